//! `ae`: train, evaluate and use convolutional autoencoders.
//!
//! Errors are printed with their causes and exit with status 1 (2 for usage
//! errors).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod anomaly;
mod codec;
mod commands;
mod usemodel;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Convolutional autoencoders on the CPU: train, evaluate, encode, detect.
#[derive(Parser)]
#[command(name = "ae", version, about)]
struct Cli {
    /// Print only errors and final results.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum ThresholdAction {
    /// Fit a threshold on the scores of the run's validation split (normal
    /// data); F1-adaptive fits on labelled data (--images, else the test split).
    Fit {
        /// The run directory.
        #[arg(long)]
        model: PathBuf,
        /// manual, percentile, contamination, mean_std, median_mad, iqr, otsu
        /// or f1_adaptive.
        #[arg(long)]
        method: String,
        /// manual: the threshold.
        #[arg(long)]
        value: Option<f64>,
        /// percentile: the percentile of normal scores (default 95).
        #[arg(long)]
        q: Option<f64>,
        /// contamination: the anomalous fraction, in (0, 0.5] (default 0.05).
        #[arg(long)]
        rate: Option<f64>,
        /// mean_std, median_mad (default 3) and iqr (default 1.5): k.
        #[arg(long)]
        k: Option<f64>,
        /// otsu: histogram bins (default 256).
        #[arg(long)]
        bins: Option<usize>,
        /// mse, l1, ssim or neg_elbo.
        #[arg(long, default_value = "mse")]
        score: String,
        /// Directory of the IDX files (replaces the run's).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Labelled images for f1_adaptive (`normal/`, `abnormal/`).
        #[arg(long)]
        images: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Train a model from a TOML config (or resume a run).
    Train {
        /// The training config (see configs/).
        #[arg(long, required_unless_present = "resume")]
        config: Option<PathBuf>,
        /// Directory of the IDX files (replaces the config's).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Run directory to create (default runs/<name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Number of epochs (replaces the config's; extends a resumed run).
        #[arg(long)]
        epochs: Option<usize>,
        /// Codec: the rate weight λ (replaces the config's `train.lambda`).
        #[arg(long, conflicts_with = "resume")]
        lambda: Option<f64>,
        /// Continue the run in this directory from its last completed epoch.
        #[arg(long, conflicts_with = "out")]
        resume: Option<PathBuf>,
        /// Print the final report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate a trained run on its test split.
    Eval {
        /// The run directory.
        #[arg(long)]
        model: PathBuf,
        /// Directory of the IDX files (replaces the run's).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// VAE on binary data: importance samples per test image for the
        /// likelihood estimate (0 skips it).
        #[arg(long, default_value_t = 1000)]
        iw_samples: usize,
        /// VAE: estimate the likelihood on the first N test images only.
        #[arg(long)]
        iw_limit: Option<usize>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Describe a model directory: its config, shapes and parameters.
    Inspect {
        /// A run or checkpoint directory.
        #[arg(long)]
        model: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Anomaly scores of a run's test split (or of --images / --csv), with
    /// AUROC, AUPRC and F1 when labels are known.
    Score {
        /// The run directory.
        #[arg(long)]
        model: PathBuf,
        /// Directory of the IDX files (replaces the run's).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Score the images in this folder (`normal/` and `abnormal/`
        /// subfolders give labels).
        #[arg(long, conflicts_with = "csv")]
        images: Option<PathBuf>,
        /// Score the vectors of this CSV file.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// The CSV column with labels (0 normal, anything else anomalous).
        #[arg(long, requires = "csv")]
        label_column: Option<String>,
        /// mse, l1, ssim or neg_elbo (default: the threshold's, else mse).
        #[arg(long)]
        score: Option<String>,
        /// Write per-sample scores to this CSV.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Write heat maps of the most anomalous inputs into this directory.
        #[arg(long)]
        heatmaps: Option<PathBuf>,
        /// How many heat maps.
        #[arg(long, default_value_t = 16)]
        top: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Fit and save a threshold (`threshold.json` in the run directory).
    Threshold {
        #[command(subcommand)]
        action: ThresholdAction,
    },
    /// Latent codes (the mean for VAEs) of the run's test split, --images or
    /// --csv, as CSV.
    Encode {
        /// The run directory.
        #[arg(long)]
        model: PathBuf,
        /// Directory of the IDX files (replaces the run's).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Encode the images in this folder.
        #[arg(long, conflicts_with = "csv")]
        images: Option<PathBuf>,
        /// Encode the vectors of this CSV.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Output CSV.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Images from latent codes (a CSV written by `ae encode`).
    Decode {
        /// The run directory.
        #[arg(long)]
        model: PathBuf,
        /// The latents CSV.
        latents: PathBuf,
        /// A grid PNG (`.png`) or a directory for one PNG each.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Images through the model: PNG in, PNG out.
    Reconstruct {
        /// The run directory.
        #[arg(long)]
        model: PathBuf,
        /// Input images.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Output directory (or a PNG with --grid).
        #[arg(long, short)]
        output: PathBuf,
        /// One PNG: inputs above their reconstructions.
        #[arg(long)]
        grid: bool,
    },
    /// Denoise images with a model trained in denoising mode.
    Denoise {
        /// The run directory of a denoising autoencoder.
        #[arg(long)]
        model: PathBuf,
        /// Noisy images.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Output directory (or a PNG with --grid).
        #[arg(long, short)]
        output: PathBuf,
        /// One PNG: inputs above their denoised versions.
        #[arg(long)]
        grid: bool,
    },
    /// Transform images with a model trained on paired data (input → target).
    Transform {
        /// The run directory of a paired model.
        #[arg(long)]
        model: PathBuf,
        /// Input images.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Output directory (or a PNG with --grid).
        #[arg(long, short)]
        output: PathBuf,
        /// One PNG: inputs above their transforms.
        #[arg(long)]
        grid: bool,
    },
    /// What the latent codes are worth as features: a linear classifier
    /// (multinomial logistic regression) on the codes, on PCA codes of the same
    /// size and on raw inputs, fitted on the run's training data, scored on
    /// its test split.
    FeaturesEval {
        /// The run directory (of a model trained on labelled data).
        #[arg(long)]
        model: PathBuf,
        /// Directory of the IDX files (replaces the run's).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Passes of the classifier over the training data.
        #[arg(long, default_value_t = 30)]
        epochs: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Compress images with a codec (a model trained with an entropy
    /// bottleneck): one `.aec` file per image, or one archive with --archive.
    /// Prints bytes, bits per pixel and PSNR of the decoded bytes.
    Compress {
        /// The codec's run directory.
        #[arg(long)]
        model: PathBuf,
        /// PNG images (any size). Without them, the run's test split.
        images: Vec<PathBuf>,
        /// Directory of the IDX files, for the test split (replaces the run's).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Compress only the first N test images.
        #[arg(long)]
        limit: Option<usize>,
        /// Output directory (or, with --archive, the archive file).
        #[arg(long, short)]
        output: PathBuf,
        /// All images in one archive: one header, one rANS stream.
        #[arg(long)]
        archive: bool,
        /// Print one JSON object with the totals.
        #[arg(long)]
        json: bool,
    },
    /// Decompress `.aec` files or `.aea` archives to PNGs.
    Decompress {
        /// The codec's run directory (the model that compressed them).
        #[arg(long)]
        model: PathBuf,
        /// Compressed files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output directory for the PNGs.
        #[arg(long, short)]
        output: PathBuf,
        /// Directory of the original PNGs (same names): report PSNR.
        #[arg(long)]
        original: Option<PathBuf>,
        /// Print one JSON object with the totals.
        #[arg(long)]
        json: bool,
    },
    /// Picture the latent space (PNG) and compare reconstruction with PCA of
    /// the same size.
    Reduce {
        /// The run directory.
        #[arg(long)]
        model: PathBuf,
        /// Directory of the IDX files (replaces the run's).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The PNG to write.
        #[arg(long, default_value = "latent.png")]
        plot: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Denoising quality on the run's test split: PSNR of the noisy images,
    /// of classical filters and of the model (Gaussian σ 0.5, salt-and-pepper
    /// p 0.2).
    DenoiseEval {
        /// The run directory of a denoising autoencoder.
        #[arg(long)]
        model: PathBuf,
        /// Directory of the IDX files (replaces the run's).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Images sampled from a VAE's prior.
    Sample {
        /// The run directory of a VAE.
        #[arg(long)]
        model: PathBuf,
        /// How many.
        #[arg(short, default_value_t = 64)]
        n: usize,
        /// A grid PNG (`.png`) or a directory for one PNG each.
        #[arg(long, short)]
        output: PathBuf,
        /// Seed of the draws.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// A strip of images between two images, through the latent space.
    Interpolate {
        /// The run directory.
        #[arg(long)]
        model: PathBuf,
        /// The first image.
        a: PathBuf,
        /// The last image.
        b: PathBuf,
        /// Images in the strip, both ends included.
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// The PNG to write.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// List the named model presets.
    Presets,
    /// PCA baseline: fit on a config's training split, report the test
    /// reconstruction error at each number of components.
    Pca {
        /// A training config (its data section is used).
        #[arg(long)]
        config: PathBuf,
        /// Directory of the IDX files (replaces the config's).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Numbers of components, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "32")]
        components: Vec<usize>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Measure training and inference speed of the mnist-conv model
    /// (the figures `cargo xtask bench perf` compares with PyTorch).
    Bench {
        /// `train` (steps of batch `--batch`), `infer` (batch `--batch` and
        /// batch 1), or `all`.
        #[arg(long, default_value = "all")]
        mode: String,
        /// Timed repetitions (the median is reported).
        #[arg(long, default_value_t = 30)]
        steps: usize,
        /// Batch size.
        #[arg(long, default_value_t = 128)]
        batch: usize,
    },
}

fn main() -> ExitCode {
    // candle's CPU kernels ask rayon for the thread count on every op; unset,
    // rayon re-reads /proc/cpuinfo each time. Pin it once, before any thread
    // starts.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
    }
    // mimalloc's option `purge_delay` (15 in both of its option
    // lists, v2 and v3): -1 keeps freed memory instead of returning it to the OS, which
    // would zero it again on the next large allocation (every training step).
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: a plain option setter of the linked mimalloc.
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, -1);
    }
    let cli = Cli::parse();
    let default = if cli.quiet { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
    let result = match cli.command {
        Command::Train {
            config,
            data_dir,
            out,
            epochs,
            lambda,
            resume,
            json,
        } => commands::train(
            config, data_dir, out, epochs, lambda, resume, json, cli.quiet,
        ),
        Command::Eval {
            model,
            data_dir,
            iw_samples,
            iw_limit,
            json,
        } => commands::eval(&model, data_dir, iw_samples, iw_limit, json, cli.quiet),
        Command::Inspect { model, json } => commands::inspect(&model, json),
        Command::Presets => commands::presets(),
        Command::Encode {
            model,
            data_dir,
            images,
            csv,
            output,
        } => usemodel::encode(&model, data_dir, images, csv, &output),
        Command::Decode {
            model,
            latents,
            output,
        } => usemodel::decode(&model, &latents, &output),
        Command::Reconstruct {
            model,
            images,
            output,
            grid,
        }
        | Command::Denoise {
            model,
            images,
            output,
            grid,
        }
        | Command::Transform {
            model,
            images,
            output,
            grid,
        } => usemodel::reconstruct(&model, &images, &output, grid),
        Command::DenoiseEval {
            model,
            data_dir,
            json,
        } => usemodel::denoise_eval(&model, data_dir, json),
        Command::Reduce {
            model,
            data_dir,
            plot,
            json,
        } => usemodel::reduce(&model, data_dir, &plot, json),
        Command::FeaturesEval {
            model,
            data_dir,
            epochs,
            json,
        } => usemodel::features_eval(&model, data_dir, epochs, json),
        Command::Compress {
            model,
            images,
            data_dir,
            limit,
            output,
            archive,
            json,
        } => codec::compress(
            &model, &images, data_dir, limit, &output, archive, json, cli.quiet,
        ),
        Command::Decompress {
            model,
            files,
            output,
            original,
            json,
        } => codec::decompress(&model, &files, &output, original, json),
        Command::Sample {
            model,
            n,
            output,
            seed,
        } => usemodel::sample(&model, n, &output, seed),
        Command::Interpolate {
            model,
            a,
            b,
            steps,
            output,
        } => usemodel::interpolate(&model, &a, &b, steps, &output),
        Command::Score {
            model,
            data_dir,
            images,
            csv,
            label_column,
            score,
            output,
            heatmaps,
            top,
            json,
        } => anomaly::score(anomaly::ScoreArgs {
            model,
            data_dir,
            images,
            csv,
            label_column,
            score,
            output,
            heatmaps,
            top,
            json,
        }),
        Command::Threshold {
            action:
                ThresholdAction::Fit {
                    model,
                    method,
                    value,
                    q,
                    rate,
                    k,
                    bins,
                    score,
                    data_dir,
                    images,
                },
        } => anomaly::fit_threshold(
            &model, &method, value, q, rate, k, bins, &score, data_dir, images,
        ),
        Command::Pca {
            config,
            data_dir,
            components,
            json,
        } => commands::pca(&config, data_dir, &components, json),
        Command::Bench { mode, steps, batch } => commands::bench(&mode, steps, batch),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
