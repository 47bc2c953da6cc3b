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

const WIDTHS: [usize; 4] = models::MLP_WIDTHS;

/// `n` rows of pixel-like inputs in [0, 1].
fn rows(n: usize, seed: u64) -> Vec<f32> {
    models::rows(n, WIDTHS[0], seed)
}

/// One model in every runner.
struct Runners {
    name: &'static str,
    native: kiln_guest::Model<'static>,
    warm: Warm,
    warm_relaxed: Warm,
    loaded: kiln::sandbox::LoadedModule,
}

fn runners(sandbox: &Sandbox) -> Vec<Runners> {
    let f32_model = models::mlp(&WIDTHS, 7);
    let int8_model = shrink::quantize(&f32_model, Some(&rows(256, 1)), &QuantizeConfig::default())
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

fn bench(c: &mut Criterion) {
    let sandbox = Sandbox::new(Limits::default()).unwrap();
    let mut all = runners(&sandbox);
    for batch in [1, 32] {
        let x = rows(batch, 2);
        let mut out = vec![0.0f32; batch * 10];
        let mut g = c.benchmark_group(format!("int8/mlp-784-256-128-10/batch-{batch}"));
        g.sample_size(30).measurement_time(Duration::from_secs(2));
        for r in &mut all {
            g.bench_function(format!("{} native", r.name), |b| {
                b.iter(|| r.native.predict(black_box(&x)).unwrap())
            });
            g.bench_function(format!("{} wasmtime warm", r.name), |b| {
                b.iter(|| r.warm.predict(black_box(&x), &mut out).unwrap())
            });
            g.bench_function(format!("{} wasmtime warm relaxed", r.name), |b| {
                b.iter(|| r.warm_relaxed.predict(black_box(&x), &mut out).unwrap())
            });
            g.bench_function(format!("{} wasmtime fresh", r.name), |b| {
                b.iter(|| sandbox.predict(&r.loaded, black_box(&x)).unwrap())
            });
        }
        g.finish();
    }
}

/// Interleaved medians (µs per call) in one process.
fn summary() {
    let sandbox = Sandbox::new(Limits::default()).unwrap();
    let mut all = runners(&sandbox);
    println!("\nMLP 784-256-128-10, median µs per call of 1000 interleaved rounds:");
    for batch in [1, 32] {
        let x = rows(batch, 2);
        let mut out = vec![0.0f32; batch * 10];
        // [model][runner] samples.
        let mut t = vec![vec![Vec::new(); 4]; all.len()];
        for _ in 0..1000 {
            for (m, r) in all.iter_mut().enumerate() {
                let s = Instant::now();
                black_box(r.native.predict(black_box(&x)).unwrap());
                t[m][0].push(s.elapsed().as_secs_f64() * 1e6);
                let s = Instant::now();
                r.warm.predict(black_box(&x), &mut out).unwrap();
                t[m][1].push(s.elapsed().as_secs_f64() * 1e6);
                let s = Instant::now();
                r.warm_relaxed.predict(black_box(&x), &mut out).unwrap();
                t[m][2].push(s.elapsed().as_secs_f64() * 1e6);
                let s = Instant::now();
                black_box(sandbox.predict(&r.loaded, black_box(&x)).unwrap());
                t[m][3].push(s.elapsed().as_secs_f64() * 1e6);
            }
        }
        let med: Vec<Vec<f64>> = t
            .into_iter()
            .map(|m| {
                m.into_iter()
                    .map(|mut v| {
                        v.sort_by(f64::total_cmp);
                        v[v.len() / 2]
                    })
                    .collect()
            })
            .collect();
        println!("  batch {batch}:");
        for (k, runner) in ["native", "wasmtime warm", "warm relaxed", "wasmtime fresh"]
            .iter()
            .enumerate()
        {
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

/// Values per CNN input row (1×28×28).
const CNN_IN: usize = 28 * 28;

fn cnn_runners(sandbox: &Sandbox) -> Vec<Runners> {
    let f32_model = models::lenet(11);
    let calibration = models::rows(64, CNN_IN, 1);
    let int8_model = shrink::quantize(&f32_model, Some(&calibration), &QuantizeConfig::default())
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

fn bench_cnn(c: &mut Criterion) {
    let sandbox = Sandbox::new(Limits::default()).unwrap();
    let mut all = cnn_runners(&sandbox);
    for batch in [1, 32] {
        let x = models::rows(batch, CNN_IN, 2);
        let mut out = vec![0.0f32; batch * 10];
        let mut g = c.benchmark_group(format!("int8/lenet-1x28x28/batch-{batch}"));
        g.sample_size(20).measurement_time(Duration::from_secs(2));
        for r in &mut all {
            g.bench_function(format!("{} native", r.name), |b| {
                b.iter(|| r.native.predict(black_box(&x)).unwrap())
            });
            g.bench_function(format!("{} wasmtime warm", r.name), |b| {
                b.iter(|| r.warm.predict(black_box(&x), &mut out).unwrap())
            });
            g.bench_function(format!("{} wasmtime warm relaxed", r.name), |b| {
                b.iter(|| r.warm_relaxed.predict(black_box(&x), &mut out).unwrap())
            });
        }
        g.finish();
    }
}

/// Interleaved medians (µs per call) of the CNN in one process.
fn summary_cnn() {
    let sandbox = Sandbox::new(Limits::default()).unwrap();
    let mut all = cnn_runners(&sandbox);
    println!("\nLeNet-style CNN 1x28x28, median µs per call of 300 interleaved rounds:");
    for batch in [1, 32] {
        let x = models::rows(batch, CNN_IN, 2);
        let mut out = vec![0.0f32; batch * 10];
        let mut t = vec![vec![Vec::new(); 3]; all.len()];
        for _ in 0..300 {
            for (m, r) in all.iter_mut().enumerate() {
                let s = Instant::now();
                black_box(r.native.predict(black_box(&x)).unwrap());
                t[m][0].push(s.elapsed().as_secs_f64() * 1e6);
                let s = Instant::now();
                r.warm.predict(black_box(&x), &mut out).unwrap();
                t[m][1].push(s.elapsed().as_secs_f64() * 1e6);
                let s = Instant::now();
                r.warm_relaxed.predict(black_box(&x), &mut out).unwrap();
                t[m][2].push(s.elapsed().as_secs_f64() * 1e6);
            }
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!("  batch {batch}:");
        for (k, runner) in ["native", "wasmtime warm", "warm relaxed"]
            .iter()
            .enumerate()
        {
            let (f, q) = (med(&mut t[0][k]), med(&mut t[1][k]));
            println!(
                "    {runner:15} f32 {f:8.1}  int8 {q:8.1}  int8/f32 {:.2}",
                q / f
            );
        }
    }
}

criterion_group!(benches, bench, bench_cnn);

fn main() {
    let quick = std::env::args().any(|a| a == "--summary-only");
    if !quick {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
    summary();
    summary_cnn();
}
