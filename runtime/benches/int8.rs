//! The int8 MLP 784-256-128-10 (random weights, quantized with calibration
//! rows) beside its f32 original: batch 1 and batch 32, natively and in
//! wasmtime — the module as built (plain SIMD128 kernel) and its relaxed-SIMD
//! twin (`kiln::module::relaxed_twin`, what the sandbox runs; an f32 model
//! has no twin and runs the plain kernel there too). Then the same for the
//! LeNet-style CNN of `kiln::bench::models` (int8 convolutions and pooling
//! beside f32).
//!
//! `cargo bench -p kiln --bench int8`. Criterion measures each variant; a
//! final interleaved pass prints medians per prediction and the int8/f32
//! ratios from one process, which is what `docs/benchmarks.md` quotes.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use kiln::bench::{Warm, models};
use kiln::sandbox::{Limits, Sandbox};
use kiln::shrink::{self, QuantizeConfig};

/// One model in every runner.
struct Runners {
    name: &'static str,
    native: kiln_guest::Model<'static>,
    warm: Warm,
    warm_relaxed: Warm,
    loaded: kiln::sandbox::LoadedModule,
}

/// The runners, in the order of [`Runners::run`]'s `k`.
const RUNNERS: [&str; 4] = ["native", "wasmtime warm", "warm relaxed", "wasmtime fresh"];

impl Runners {
    /// Runner `k` of [`RUNNERS`] on the rows `x`.
    fn run(&mut self, k: usize, sandbox: &Sandbox, x: &[f32], out: &mut [f32]) {
        match k {
            0 => drop(black_box(self.native.predict(black_box(x)).unwrap())),
            1 => self.warm.predict(black_box(x), out).unwrap(),
            2 => self.warm_relaxed.predict(black_box(x), out).unwrap(),
            _ => drop(black_box(
                sandbox.predict(&self.loaded, black_box(x)).unwrap(),
            )),
        }
    }
}

/// A model benchmarked as f32 and as int8 (quantized with `calibration`
/// rows of `width` values).
struct Case {
    /// Criterion's group prefix, e.g. `int8/mlp-784-256-128-10`.
    group: &'static str,
    /// The summary's heading.
    title: &'static str,
    width: usize,
    /// Interleaved rounds in the summary; criterion's sample size.
    rounds: usize,
    samples: usize,
    /// Also time the fresh sandboxed instance per call.
    fresh: bool,
    f32_model: fn() -> kiln::model::ModelFile,
    calibration_rows: usize,
}

const MLP: Case = Case {
    group: "int8/mlp-784-256-128-10",
    title: "MLP 784-256-128-10",
    width: models::MLP_WIDTHS[0],
    rounds: 1000,
    samples: 30,
    fresh: true,
    f32_model: || models::mlp(&models::MLP_WIDTHS, 7),
    calibration_rows: 256,
};

const LENET: Case = Case {
    group: "int8/lenet-1x28x28",
    title: "LeNet-style CNN 1x28x28",
    width: 28 * 28,
    rounds: 300,
    samples: 20,
    fresh: false,
    f32_model: || models::lenet(11),
    calibration_rows: 64,
};

impl Case {
    /// The runners this case times.
    fn kinds(&self) -> usize {
        if self.fresh { 4 } else { 3 }
    }

    /// The f32 model and its int8 quantization, each in every runner.
    fn runners(&self, sandbox: &Sandbox) -> Vec<Runners> {
        let f32_model = (self.f32_model)();
        let calibration = models::rows(self.calibration_rows, self.width, 1);
        let int8_model =
            shrink::quantize(&f32_model, Some(&calibration), &QuantizeConfig::default())
                .expect("quantizes");
        [("f32", f32_model), ("int8", int8_model)]
            .into_iter()
            .map(|(name, m)| {
                let wasm = kiln::module::build(&m, "bench").unwrap();
                let twin = kiln::module::relaxed_twin(&wasm).unwrap();
                Runners {
                    name,
                    native: m.to_kernel().unwrap(),
                    loaded: sandbox.load(&wasm).unwrap(),
                    warm: Warm::new(&wasm).unwrap(),
                    warm_relaxed: Warm::new(twin.as_deref().unwrap_or(&wasm)).unwrap(),
                }
            })
            .collect()
    }

    /// Criterion's measurement of every runner, batch 1 and 32.
    fn bench(&self, c: &mut Criterion) {
        let sandbox = Sandbox::new(Limits::default()).unwrap();
        let mut all = self.runners(&sandbox);
        for batch in [1, 32] {
            let x = models::rows(batch, self.width, 2);
            let mut out = vec![0.0f32; batch * 10];
            let mut g = c.benchmark_group(format!("{}/batch-{batch}", self.group));
            g.sample_size(self.samples)
                .measurement_time(Duration::from_secs(2));
            for r in &mut all {
                for (k, runner) in RUNNERS.iter().enumerate().take(self.kinds()) {
                    g.bench_function(format!("{} {runner}", r.name), |b| {
                        b.iter(|| r.run(k, &sandbox, &x, &mut out))
                    });
                }
            }
            g.finish();
        }
    }

    /// Interleaved medians (µs per call) in one process, with the int8/f32
    /// ratios and each runner's ratio to native.
    fn summary(&self) {
        let sandbox = Sandbox::new(Limits::default()).unwrap();
        let mut all = self.runners(&sandbox);
        println!(
            "\n{}, median µs per call of {} interleaved rounds:",
            self.title, self.rounds
        );
        for batch in [1, 32] {
            let x = models::rows(batch, self.width, 2);
            let mut out = vec![0.0f32; batch * 10];
            // [model][runner] samples.
            let mut t = vec![vec![Vec::new(); self.kinds()]; all.len()];
            for _ in 0..self.rounds {
                for (m, r) in all.iter_mut().enumerate() {
                    for (k, samples) in t[m].iter_mut().enumerate() {
                        let s = Instant::now();
                        r.run(k, &sandbox, &x, &mut out);
                        samples.push(s.elapsed().as_secs_f64() * 1e6);
                    }
                }
            }
            let med: Vec<Vec<f64>> = t
                .into_iter()
                .map(|m| m.into_iter().map(median).collect())
                .collect();
            println!("  batch {batch}:");
            for (k, runner) in RUNNERS.iter().enumerate().take(self.kinds()) {
                println!(
                    "    {runner:15} f32 {:8.1}  int8 {:8.1}  int8/f32 {:.2}  \
                     /native: f32 {:.2} int8 {:.2}",
                    med[0][k],
                    med[1][k],
                    med[1][k] / med[0][k],
                    med[0][k] / med[0][0],
                    med[1][k] / med[1][0]
                );
            }
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench(c: &mut Criterion) {
    MLP.bench(c);
    LENET.bench(c);
}

/// The two LeNet convolutions alone, accumulators only: the dispatched
/// kernel in wasmtime (through `kernel-tests.wasm`'s `kiln_test_check` on
/// the shared case table's LeNet cases, the module's SIMD128 code) and
/// natively (the same check), median µs per call of 300 rounds,
/// interleaved. A round times the check with [`REPS`] extra runs of the
/// kernel and without: their difference over `REPS` is one call. With the
/// whole-model medians above this splits the CNN's time into its
/// convolutions and the rest (requantize, pooling, dense layers, call).
fn summary_cnn_layers() {
    use kiln_guest::kernels::check;
    use wasmtime::{Config, Engine, Instance, Module, Store};
    const REPS: usize = 20;
    let engine = Engine::new(Config::new().wasm_simd(true)).unwrap();
    let module = Module::new(&engine, kiln::module::KERNEL_TESTS_WASM).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let run = instance
        .get_typed_func::<(i32, i32, i32), i64>(&mut store, "kiln_test_check")
        .unwrap();
    let op = check::OPS
        .iter()
        .position(|(name, _)| *name == "conv2d_i8")
        .unwrap();
    let per_call = |mut time: Box<dyn FnMut(usize) -> f64 + '_>| {
        let (base, reps) = (time(0), time(REPS));
        (reps - base) / REPS as f64
    };
    println!("\nLeNet int8 convolutions alone (accumulators), median µs per call of 300 rounds:");
    for (name, dims) in [
        ("conv1 1->6 28x28", [1, 28, 28, 6, 5, 5, 1, 0]),
        ("conv2 6->16 12x12", [6, 12, 12, 16, 5, 5, 1, 0]),
    ] {
        let case = check::cases::CONV.iter().position(|&c| c == dims).unwrap();
        let (mut wasm, mut native) = (Vec::new(), Vec::new());
        for _ in 0..300 {
            wasm.push(per_call(Box::new(|reps| {
                let s = Instant::now();
                let r = run.call(&mut store, (op as i32, case as i32, reps as i32));
                assert!(r.unwrap() >= 0, "{name} in wasm");
                s.elapsed().as_secs_f64() * 1e6
            })));
            native.push(per_call(Box::new(|reps| {
                let s = Instant::now();
                black_box(check::check(op, Some(case), reps)).unwrap();
                s.elapsed().as_secs_f64() * 1e6
            })));
        }
        println!(
            "    {name:18} wasmtime {:8.1}  native {:8.1}",
            median(wasm),
            median(native)
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    let quick = std::env::args().any(|a| a == "--summary-only");
    if !quick {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
    MLP.summary();
    LENET.summary();
    summary_cnn_layers();
}
