//! Measuring predictions: one model run by kiln's native kernel and by its
//! module in wasmtime, interleaved call by call so the ratios hold on a noisy
//! machine. `kiln bench` prints what [`run`] returns; `bench/run.sh` puts it
//! beside the peers (onnxruntime, onnxruntime-web, tract); the criterion
//! benches in `runtime/benches/` reuse [`models`] and [`Warm`].
//!
//! Runners ([`Runner`]):
//! * native — the kernel linked into this binary, with a reused scratch;
//! * fresh — the sandbox's per-request path, as `kiln serve` runs it: a
//!   pooled, capped, deadline-bound fresh instance per call
//!   ([`Sandbox::predict`]);
//! * warm — one instance kept between calls ([`Warm`]), as a page or a
//!   worker keeps it.
//!
//! Every runner's scores for the measured input are compared bit for bit
//! with the native kernel's before any figure is reported.

pub mod models;
mod warm;

use std::hint::black_box;
use std::time::{Duration, Instant};

use kiln_guest::{Model, Scratch};

use crate::model::{ModelFile, ModelFileError};
use crate::module::{self, ModuleError};
use crate::sandbox::{EngineOptions, Limits, LoadedModule, Sandbox, SandboxError};

pub use warm::Warm;

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Module(#[from] ModuleError),
    #[error(transparent)]
    ModelFile(#[from] ModelFileError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("the module embeds no model; was it built by `kiln build`?")]
    NoModel,
    #[error("the embedded model is invalid: {0}")]
    Decode(String),
    #[error("the native kernel failed: {0}")]
    Kernel(String),
    #[error("warm instance: {0}")]
    Warm(String),
    #[error(
        "{runner} gave other scores than the native kernel at batch {batch} (first difference at output {index}: {got} vs {want})"
    )]
    Mismatch {
        runner: &'static str,
        batch: usize,
        index: usize,
        got: f32,
        want: f32,
    },
    #[error("--{0} must be at least 1")]
    Zero(&'static str),
}

/// One way of running the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    Native,
    Fresh,
    Warm,
}

impl Runner {
    pub const ALL: [Runner; 3] = [Runner::Native, Runner::Fresh, Runner::Warm];

    /// The name in reports (and in `bench/run.sh`'s table).
    pub fn name(self) -> &'static str {
        match self {
            Runner::Native => "kiln native",
            Runner::Fresh => "kiln wasmtime (fresh instance per call)",
            Runner::Warm => "kiln wasmtime (warm instance)",
        }
    }
}

/// The model under test: its module and the same model for the native kernel.
pub struct Subject {
    wasm: Vec<u8>,
    kernel: Model<'static>,
}

impl Subject {
    /// Builds the module of a model file (as `kiln build` does).
    pub fn from_model(model: &ModelFile, sha256: &str) -> Result<Self, BenchError> {
        Ok(Subject {
            wasm: module::build(model, sha256)?,
            kernel: model.to_kernel()?,
        })
    }

    /// Takes a module built by `kiln build`; the native kernel runs the model
    /// embedded in it.
    pub fn from_module(wasm: Vec<u8>) -> Result<Self, BenchError> {
        let blob = module::embedded_blob(&wasm)?.ok_or(BenchError::NoModel)?;
        let kernel = kiln_guest::blob::decode(blob)
            .map_err(|e| BenchError::Decode(e.to_string()))?
            .into_owned();
        Ok(Subject { wasm, kernel })
    }

    pub fn module_bytes(&self) -> usize {
        self.wasm.len()
    }
    pub fn input_len(&self) -> usize {
        self.kernel.input_len()
    }
    pub fn output_len(&self) -> usize {
        self.kernel.output_len()
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct Config {
    /// Timed calls per runner at batch 1; see [`Config::calls`].
    pub iters: usize,
    /// Untimed calls per runner at batch 1 before timing; see
    /// [`Config::calls`].
    pub warmup: usize,
    /// Rows per call; each is measured separately.
    pub batches: Vec<usize>,
    pub runners: Vec<Runner>,
}

impl Config {
    /// Timed rounds over all batch sizes (what a progress bar counts).
    pub fn rounds(&self) -> usize {
        self.batches.iter().map(|&b| self.calls(b).1).sum()
    }

    /// `(warm-up, timed)` calls at `batch` rows: `warmup` and `iters` divided
    /// by `min(batch, 8)` (at least 1 and 10), so a large batch takes about
    /// as long as batch 1 but no call count gets too small for a p99 —
    /// the rule `bench/run.sh`'s peers follow too.
    pub fn calls(&self, batch: usize) -> (usize, usize) {
        let d = batch.clamp(1, 8);
        (
            (self.warmup / d).max(1),
            (self.iters / d).max(10.min(self.iters)),
        )
    }
}

/// The figures of one runner at one batch size.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figure {
    pub runtime: &'static str,
    pub batch: usize,
    /// Median µs per call.
    pub median_us: f64,
    /// 99th percentile µs per call.
    pub p99_us: f64,
    /// Rows predicted per second at the median.
    pub per_s: f64,
}

/// Everything one run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub figures: Vec<Figure>,
    /// Size of the model module.
    pub module_bytes: usize,
    /// Peak resident memory of this process (Linux `VmHWM`), if known.
    pub peak_rss_kib: Option<u64>,
    /// Scores of the first row of the measured input (all runners agree).
    pub scores: Vec<f32>,
}

/// A prepared runner: its state and the call that is timed.
#[expect(
    clippy::large_enum_variant,
    reason = "one per runner, made once; a boxed Scratch would add an indirection to the timed native call"
)]
enum Live<'a> {
    Native(Scratch),
    Fresh(&'a Sandbox, &'a LoadedModule),
    Warm(Box<Warm>),
}

impl Live<'_> {
    fn call(&mut self, kernel: &Model<'_>, x: &[f32], out: &mut [f32]) -> Result<(), BenchError> {
        let batch = x.len() / kernel.input_len();
        match self {
            Live::Native(scratch) => {
                let err = |e: kiln_guest::RunError| BenchError::Kernel(format!("{e:?}"));
                scratch
                    .input(kernel, batch)
                    .map_err(err)?
                    .copy_from_slice(x);
                out.copy_from_slice(kernel.run(batch, scratch).map_err(err)?);
            }
            Live::Fresh(sandbox, loaded) => out.copy_from_slice(&sandbox.predict(loaded, x)?),
            Live::Warm(warm) => warm.predict(x, out)?,
        }
        Ok(())
    }
}

/// Measures `subject` as `config` says. `tick` is called after each timed
/// round (one call of every runner) to drive a progress bar; there are
/// [`Config::rounds`] of them.
pub fn run(
    subject: &Subject,
    config: &Config,
    mut tick: impl FnMut(),
) -> Result<Report, BenchError> {
    if config.iters == 0 {
        return Err(BenchError::Zero("iters"));
    }
    if config.batches.contains(&0) {
        return Err(BenchError::Zero("batch"));
    }
    let largest = config.batches.iter().copied().max().unwrap_or(1);
    // `kiln serve`'s limits, but a deadline the largest batch of a
    // MobileNet-class model meets on a loaded machine (32 rows of
    // MobileNetV2 at 96×96 took > 1 s at load average 20): the deadline's
    // ticker still runs, the call is simply not cut short.
    let limits = Limits {
        deadline: Duration::from_secs(60),
        ..Limits::default()
    };
    let sandbox = Sandbox::with_options(
        limits,
        EngineOptions {
            pool_slots: Some(2),
            max_memory_bytes: limits.memory_bytes,
            cache_dir: None,
            keep_resident: None,
        },
    )?;
    let loaded = sandbox.load(&subject.wasm)?;
    let mut live: Vec<(Runner, Live<'_>)> = Vec::new();
    for &r in &config.runners {
        let state = match r {
            Runner::Native => Live::Native(Scratch::new()),
            Runner::Fresh => Live::Fresh(&sandbox, &loaded),
            // What the sandbox runs: an int8 module's relaxed-SIMD twin.
            Runner::Warm => {
                let twin = crate::module::relaxed_twin(&subject.wasm)?;
                let wasm = twin.as_deref().unwrap_or(&subject.wasm);
                Live::Warm(Box::new(Warm::new(wasm)?))
            }
        };
        live.push((r, state));
    }
    let kernel = &subject.kernel;
    let (width, outputs) = (kernel.input_len(), kernel.output_len());
    let want = kernel
        .predict(&models::pattern_rows(largest, width))
        .map_err(|e| BenchError::Kernel(format!("{e:?}")))?;
    let mut figures = Vec::new();
    for &batch in &config.batches {
        let (warmup, iters) = config.calls(batch);
        let x = models::pattern_rows(batch, width);
        let mut out = vec![0.0f32; batch * outputs];
        for (r, state) in &mut live {
            state.call(kernel, &x, &mut out)?;
            if let Some(index) = (0..out.len()).find(|&i| out[i].to_bits() != want[i].to_bits()) {
                return Err(BenchError::Mismatch {
                    runner: r.name(),
                    batch,
                    index,
                    got: out[index],
                    want: want[index],
                });
            }
            for _ in 0..warmup {
                state.call(kernel, black_box(&x), &mut out)?;
            }
        }
        let mut samples = vec![Vec::with_capacity(iters); live.len()];
        for _ in 0..iters {
            for ((_, state), s) in live.iter_mut().zip(&mut samples) {
                let t = Instant::now();
                state.call(kernel, black_box(&x), &mut out)?;
                s.push(t.elapsed().as_secs_f64() * 1e6);
            }
            tick();
        }
        for ((r, _), mut s) in live.iter().zip(samples) {
            let (median_us, p99_us) = (quantile(&mut s, 0.5), quantile(&mut s, 0.99));
            figures.push(Figure {
                runtime: r.name(),
                batch,
                median_us,
                p99_us,
                per_s: batch as f64 * 1e6 / median_us,
            });
        }
    }
    Ok(Report {
        figures,
        module_bytes: subject.wasm.len(),
        peak_rss_kib: peak_rss_kib(),
        scores: want[..outputs].to_vec(),
    })
}

/// The `q` quantile of `samples` (nearest rank, sorted in place).
pub fn quantile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let i = ((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1));
    samples.get(i).copied().unwrap_or(f64::NAN)
}

/// Peak resident set size of this process, from `/proc/self/status`.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut s: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(quantile(&mut s, 0.5), 51.0);
        assert_eq!(quantile(&mut s, 0.99), 100.0);
        assert!(quantile(&mut [], 0.5).is_nan());
    }

    #[test]
    fn every_runner_agrees_and_reports_positive_figures() {
        let model = models::mlp(&[784, 32, 10], 3);
        let subject = Subject::from_model(&model, "test").unwrap();
        let config = Config {
            iters: 5,
            warmup: 1,
            batches: vec![1, 4],
            runners: Runner::ALL.to_vec(),
        };
        let mut ticks = 0;
        let report = run(&subject, &config, || ticks += 1).unwrap();
        assert_eq!((config.calls(4), config.rounds()), ((1, 5), 10));
        assert_eq!(ticks, 10);
        assert_eq!(report.figures.len(), 6);
        for f in &report.figures {
            assert!(
                f.median_us > 0.0 && f.p99_us >= f.median_us && f.per_s > 0.0,
                "{f:?}"
            );
        }
        assert_eq!(report.scores.len(), 10);
        assert!((report.scores.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn zero_iterations_or_batch_are_refused() {
        let subject = Subject::from_model(&models::mlp(&[4, 2], 1), "t").unwrap();
        let mut config = Config {
            iters: 0,
            warmup: 0,
            batches: vec![1],
            runners: vec![Runner::Native],
        };
        assert!(matches!(
            run(&subject, &config, || ()),
            Err(BenchError::Zero("iters"))
        ));
        config.iters = 1;
        config.batches = vec![0];
        assert!(matches!(
            run(&subject, &config, || ()),
            Err(BenchError::Zero("batch"))
        ));
    }
}
