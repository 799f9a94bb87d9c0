//! `ae`: train, evaluate and use convolutional autoencoders.
//!
//! Errors are printed with their causes and exit with status 1 (2 for usage
//! errors).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;

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
            resume,
            json,
        } => commands::train(config, data_dir, out, epochs, resume, json, cli.quiet),
        Command::Eval {
            model,
            data_dir,
            json,
        } => commands::eval(&model, data_dir, json),
        Command::Inspect { model, json } => commands::inspect(&model, json),
        Command::Presets => commands::presets(),
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
