//! `kiln bench`: time a model natively and in wasmtime, interleaved.

use std::path::Path;

use anyhow::{Context, bail};
use clap::ValueEnum;
use kiln::bench::{self, Config, Runner, Subject, models};
use kiln::model::ModelFile;
use kiln::module;

/// Measure how fast a model predicts: natively, and as its module in wasmtime.
///
/// The runners take turns call by call (interleaved), after a warm-up, so
/// their ratios hold on a busy machine:
///
/// - native: the kernel compiled into this binary.
///
/// - fresh: the module in wasmtime through the sandbox's per-request path,
///   as `kiln serve` runs it (a fresh pooled instance per call, with memory
///   cap and deadline).
///
/// - warm: the module in one wasmtime instance kept between calls, as a
///   page or an edge worker keeps it.
///
/// Reports the median and 99th-percentile µs per call and rows per second
/// for each batch size, the module's size and the peak memory of the process.
/// Before timing, every runner's scores are checked bit for bit against the
/// native kernel's. The input rows are `((i·37) mod 255) / 255`, the same
/// input `bench/run.sh` gives the peers (onnxruntime, onnxruntime-web, tract).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    kiln bench digits.wasm\n  \
    kiln bench model.safetensors --batch 1,8,32 --iters 5000\n  \
    kiln bench random:lenet --runner native,warm --json\n\
    The peer comparison (onnxruntime, onnxruntime-web, tract): bench/run.sh")]
pub(super) struct Args {
    /// Model module (.wasm, from `kiln build`), model file (.safetensors),
    /// or `random:mlp` / `random:lenet` (the benchmark models, random weights).
    model: String,
    /// Timed calls per runner at batch 1; a batch of B rows gets
    /// ITERS / min(B, 8) calls (at least 10).
    #[arg(long, default_value_t = 2000)]
    iters: usize,
    /// Untimed calls per runner at batch 1 before timing (divided like
    /// --iters at larger batches).
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Batch sizes (rows per call), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    batch: Vec<usize>,
    /// Runners, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "native,fresh,warm"
    )]
    runner: Vec<RunnerArg>,
    /// Print one JSON object (figures, module size, peak memory, scores)
    /// instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RunnerArg {
    Native,
    Fresh,
    Warm,
}

impl From<RunnerArg> for Runner {
    fn from(r: RunnerArg) -> Self {
        match r {
            RunnerArg::Native => Runner::Native,
            RunnerArg::Fresh => Runner::Fresh,
            RunnerArg::Warm => Runner::Warm,
        }
    }
}

fn subject(spec: &str) -> anyhow::Result<Subject> {
    let model = match spec {
        "random:mlp" => Some(models::mlp(&models::MLP_WIDTHS, 7)),
        "random:lenet" => Some(models::lenet(7)),
        s if s.starts_with("random:") => {
            bail!("unknown model `{s}`: the random models are `random:mlp` and `random:lenet`")
        }
        _ => None,
    };
    if let Some(model) = model {
        return Ok(Subject::from_model(&model, spec)?);
    }
    let path = Path::new(spec);
    let bytes = std::fs::read(path).with_context(|| format!("reading {spec}"))?;
    if bytes.starts_with(b"\0asm") {
        Subject::from_module(bytes).with_context(|| format!("benchmarking {spec}"))
    } else {
        let model = ModelFile::from_bytes(&bytes, path)?;
        Ok(Subject::from_model(&model, &module::sha256_hex(&bytes))?)
    }
}

pub(super) fn execute(a: Args) -> anyhow::Result<()> {
    let mut runners: Vec<Runner> = Vec::new();
    for r in a.runner.iter().map(|&r| Runner::from(r)) {
        if !runners.contains(&r) {
            runners.push(r);
        }
    }
    let config = Config {
        iters: a.iters,
        warmup: a.warmup,
        batches: a.batch.clone(),
        runners,
    };
    let subject = subject(&a.model)?;
    let bar = indicatif::ProgressBar::new(config.rounds() as u64).with_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} rounds, {eta} left")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(format!("benchmarking {}", a.model));
    let report = bench::run(&subject, &config, || bar.inc(1));
    bar.finish_and_clear();
    let report = report?;
    if a.json {
        let mut value = serde_json::to_value(&report)?;
        value["model"] = a.model.clone().into();
        println!("{value}");
        return Ok(());
    }
    println!(
        "{}: {} → {} values per row, module {} bytes; runners interleaved call by call, {} timed calls at batch 1",
        a.model,
        subject.input_len(),
        subject.output_len(),
        report.module_bytes,
        a.iters,
    );
    println!(
        "{:<42} {:>6} {:>12} {:>12} {:>14} {:>10}",
        "runner", "batch", "median µs", "p99 µs", "rows/s", "vs native"
    );
    for f in &report.figures {
        let native = report
            .figures
            .iter()
            .find(|n| n.batch == f.batch && n.runtime == Runner::Native.name())
            .map_or(String::from("—"), |n| {
                format!("{:.2}×", f.median_us / n.median_us)
            });
        println!(
            "{:<42} {:>6} {:>12.1} {:>12.1} {:>14.0} {:>10}",
            f.runtime, f.batch, f.median_us, f.p99_us, f.per_s, native
        );
    }
    if let Some(kib) = report.peak_rss_kib {
        println!(
            "peak resident memory of this process: {:.1} MiB",
            kib as f64 / 1024.0
        );
    }
    Ok(())
}
