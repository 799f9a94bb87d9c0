//! Checkpoints: a directory with `config.json` and `model.safetensors`.
//!
//! `config.json` is a JSON object with at least `format_version` (an integer)
//! and `model` (a [`ModelConfig`]); other top-level keys belong to the layers
//! above (a training run stores its whole training config there) and are
//! ignored here. `model.safetensors` holds every variable of the model in f32,
//! under the names the architecture documents. Loading checks the format
//! version, the config, and that the tensors match the config exactly (no
//! missing, extra, wrongly shaped or non-finite tensors); every error names the
//! file and the mismatch.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::model::Model;

/// The checkpoint format this version of ae writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// The config file of a checkpoint directory.
pub const CONFIG_FILE: &str = "config.json";
/// The weights file of a checkpoint directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// The part of `config.json` that `ae-core` reads and writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointHeader {
    /// Format version; files newer than [`FORMAT_VERSION`] are refused.
    pub format_version: u32,
    /// The model.
    pub model: ModelConfig,
}

impl CheckpointHeader {
    /// A header of the current format for `model`.
    pub fn new(model: ModelConfig) -> Self {
        CheckpointHeader {
            format_version: FORMAT_VERSION,
            model,
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory,
/// synced and then renamed, so a crash never leaves a half-written `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Reads `format_version` and `model` from a `config.json`, refusing newer
/// formats, unknown model fields and invalid configs.
pub fn read_model_config(path: &Path) -> Result<ModelConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::checkpoint(path, format!("not valid JSON: {e}")))?;
    let version = value.get("format_version").ok_or_else(|| {
        Error::checkpoint(path, "no `format_version` key: not an ae checkpoint config")
    })?;
    let version = version.as_u64().ok_or_else(|| {
        Error::checkpoint(
            path,
            format!("`format_version` must be an integer, found {version}"),
        )
    })?;
    if version > u64::from(FORMAT_VERSION) {
        return Err(Error::checkpoint(
            path,
            format!(
                "format_version {version} is newer than this ae supports ({FORMAT_VERSION}); upgrade ae to load it"
            ),
        ));
    }
    let model = value
        .get("model")
        .ok_or_else(|| Error::checkpoint(path, "no `model` key"))?;
    let model: ModelConfig = serde_json::from_value(model.clone())
        .map_err(|e| Error::checkpoint(path, format!("invalid `model`: {e}")))?;
    model
        .validate()
        .map_err(|e| Error::checkpoint(path, e.to_string()))?;
    Ok(model)
}

fn list(items: &[String]) -> String {
    const SHOW: usize = 5;
    let mut s = items
        .iter()
        .take(SHOW)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOW {
        s.push_str(&format!(", … ({} in all)", items.len()));
    }
    s
}

impl Model {
    /// Saves `config.json` and `model.safetensors` into `dir` (created if
    /// needed), each written atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.save_with(dir, serde_json::Map::new())
    }

    /// Like [`Model::save`], with `extra` top-level keys in `config.json` (a
    /// training run stores its config there).
    pub fn save_with(
        &self,
        dir: &Path,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        let mut obj = match serde_json::to_value(CheckpointHeader::new(self.config().clone())) {
            Ok(serde_json::Value::Object(o)) => o,
            _ => unreachable!("a header serialises to an object"),
        };
        for (k, v) in extra {
            obj.entry(k).or_insert(v);
        }
        let json = serde_json::to_string_pretty(&obj).expect("JSON values serialise");
        write_atomic(&dir.join(CONFIG_FILE), json.as_bytes())?;
        self.save_weights(&dir.join(WEIGHTS_FILE))
    }

    /// Writes every variable to a safetensors file, atomically.
    pub fn save_weights(&self, path: &Path) -> Result<()> {
        let tensors: BTreeMap<String, Tensor> = self
            .named_vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        let meta = HashMap::from([
            ("format".to_string(), "ae".to_string()),
            ("format_version".to_string(), FORMAT_VERSION.to_string()),
            ("kind".to_string(), self.config().kind().to_string()),
        ]);
        let bytes = safetensors::serialize(tensors.iter(), Some(meta))
            .map_err(|e| Error::checkpoint(path, format!("cannot serialise: {e}")))?;
        write_atomic(path, &bytes)
    }

    /// Loads a checkpoint directory written by [`Model::save`].
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config = read_model_config(&dir.join(CONFIG_FILE))?;
        let model = Model::new(config, 0, device)?;
        model.load_weights(&dir.join(WEIGHTS_FILE))?;
        Ok(model)
    }

    /// Replaces every variable with the tensors of a safetensors file, which
    /// must match this model exactly: same names, shapes, f32, finite values.
    pub fn load_weights(&self, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
            Error::checkpoint(
                path,
                format!("not a valid safetensors file (truncated or corrupt?): {e}"),
            )
        })?;
        let vars = self.named_vars();
        let mut missing = Vec::new();
        let mut wrong = Vec::new();
        for (name, var) in &vars {
            match file.tensor(name) {
                Err(_) => missing.push(name.clone()),
                Ok(view) => {
                    if view.dtype() != safetensors::Dtype::F32 {
                        wrong.push(format!("{name}: expected F32, found {:?}", view.dtype()));
                    } else if view.shape() != var.dims() {
                        wrong.push(format!(
                            "{name}: expected shape {:?}, found {:?}",
                            var.dims(),
                            view.shape()
                        ));
                    }
                }
            }
        }
        let known: std::collections::HashSet<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
        let mut extra: Vec<String> = file
            .names()
            .into_iter()
            .filter(|n| !known.contains(n))
            .map(str::to_string)
            .collect();
        extra.sort();
        if !(missing.is_empty() && wrong.is_empty() && extra.is_empty()) {
            let mut parts = Vec::new();
            if !missing.is_empty() {
                parts.push(format!("missing tensors: {}", list(&missing)));
            }
            if !wrong.is_empty() {
                parts.push(format!("mismatched tensors: {}", list(&wrong)));
            }
            if !extra.is_empty() {
                parts.push(format!("unexpected tensors: {}", list(&extra)));
            }
            return Err(Error::checkpoint(
                path,
                format!(
                    "does not match the `{}` model of its config ({})",
                    self.config().kind(),
                    parts.join("; ")
                ),
            ));
        }
        for (name, var) in &vars {
            let view = file.tensor(name).expect("checked above");
            let t = Tensor::from_raw_buffer(
                view.data(),
                DType::F32,
                view.shape(),
                &self.device().clone(),
            )?;
            let finite = t
                .flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .all(|v| v.is_finite());
            if !finite {
                return Err(Error::checkpoint(
                    path,
                    format!("tensor `{name}` contains NaN or infinite values"),
                ));
            }
            var.set(&t)?;
        }
        Ok(())
    }
}
