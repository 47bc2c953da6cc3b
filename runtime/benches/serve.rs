//! What one `kiln serve` request costs inside the sandbox: a fresh instance
//! from the pooling allocator (copy-on-write memory) plus one prediction.
//!
//! Criterion measures the demo digits model: a pooled instance + 1 row, an
//! on-demand instance + 1 row (no pool, what `kiln predict` uses), the
//! native kernel, and the instantiate step alone. A final interleaved pass
//! then runs the benchmark models (MLP 784-256-128-10 and the LeNet-style
//! CNN, f32 and int8, random weights) call by call in three ways — one warm
//! instance (the prediction alone), a fresh pooled instance per call with
//! slots reset the default way (`keep_resident` 0: every page the instance
//! touched is discarded), and the same with the sandbox's default
//! (`keep_resident` with `PAGEMAP_SCAN`, see `Sandbox::with_options`) — and
//! prints medians and the fresh-instance overhead (fresh − warm) from one
//! process, which is what `docs/benchmarks.md` quotes.
//!
//!     cargo bench -p kiln --bench serve
//!     cargo bench -p kiln --bench serve -- --summary   # the interleaved pass only

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use kiln::bench::{Warm, models};
use kiln::model::ModelFile;
use kiln::sandbox::{EngineOptions, Limits, LoadedModule, Sandbox};
use kiln::shrink::{self, QuantizeConfig};

fn pooled(keep_resident: usize) -> Sandbox {
    Sandbox::with_options(
        Limits::default(),
        EngineOptions {
            pool_slots: Some(16),
            max_memory_bytes: 64 << 20,
            cache_dir: None,
            keep_resident: Some(keep_resident),
        },
    )
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let wasm = kiln::serve::builtin().expect("demo model").wasm.to_vec();
    let blob = kiln::module::embedded_blob(&wasm).unwrap().unwrap();
    let kernel = kiln::kiln_guest::blob::decode(blob).unwrap().into_owned();
    let row: Vec<f32> = (0..64).map(|i| (i % 17) as f32).collect();

    let pooled = pooled(kiln::sandbox::KEEP_RESIDENT);
    let pooled_module = pooled.load(&wasm).unwrap();
    let on_demand = Sandbox::new(Limits::default()).unwrap();
    let on_demand_module = on_demand.load(&wasm).unwrap();

    let mut g = c.benchmark_group("serve_request");
    g.bench_function("pooled instance + 1 row", |b| {
        b.iter(|| pooled.predict(&pooled_module, &row).unwrap())
    });
    g.bench_function("on-demand instance + 1 row", |b| {
        b.iter(|| on_demand.predict(&on_demand_module, &row).unwrap())
    });
    g.bench_function("native kernel 1 row", |b| {
        b.iter(|| kernel.predict(&row).unwrap())
    });
    g.bench_function("pooled instantiate only", |b| {
        b.iter_custom(|n| {
            (0..n)
                .map(|_| {
                    pooled
                        .predict_measured(&pooled_module, &row)
                        .unwrap()
                        .instantiate
                })
                .sum::<Duration>()
        })
    });
    g.finish();
}

/// The benchmark models, as `bench/run.sh` measures them.
fn subjects() -> Vec<(&'static str, ModelFile)> {
    let quantize = |m: &ModelFile| {
        let calibration = models::rows(64, 28 * 28, 1);
        shrink::quantize(m, Some(&calibration), &QuantizeConfig::default()).expect("quantizes")
    };
    let mlp = models::mlp(&models::MLP_WIDTHS, 7);
    let lenet = models::lenet(11);
    vec![
        ("MLP f32", mlp.clone()),
        ("MLP int8", quantize(&mlp)),
        ("CNN f32", lenet.clone()),
        ("CNN int8", quantize(&lenet)),
    ]
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One model: warm instance, fresh instance with plain slot resets, fresh
/// instance with the sandbox's default, called in turn `rounds` times.
fn interleaved(name: &str, model: &ModelFile, batch: usize, rounds: usize) {
    let wasm = kiln::module::build(model, "bench").unwrap();
    // What the sandbox runs: an int8 module's relaxed-SIMD twin.
    let twin = kiln::module::relaxed_twin(&wasm).unwrap();
    let mut warm = Warm::new(twin.as_deref().unwrap_or(&wasm)).unwrap();
    let plain = pooled(0);
    let tuned = pooled(kiln::sandbox::KEEP_RESIDENT);
    let sandboxes: [(&Sandbox, LoadedModule); 2] = [
        (&plain, plain.load(&wasm).unwrap()),
        (&tuned, tuned.load(&wasm).unwrap()),
    ];
    let x = models::pattern_rows(batch, 28 * 28);
    let mut out = vec![0.0f32; batch * 10];
    let mut times: [Vec<f64>; 3] = Default::default();
    let mut inst: [Vec<f64>; 2] = Default::default();
    for round in 0..rounds + rounds / 10 {
        let t = Instant::now();
        warm.predict(black_box(&x), &mut out).unwrap();
        let w = t.elapsed();
        let mut fresh = [Duration::ZERO; 2];
        let mut instantiate = [Duration::ZERO; 2];
        for (k, (sandbox, loaded)) in sandboxes.iter().enumerate() {
            let t = Instant::now();
            let p = sandbox.predict_measured(loaded, black_box(&x)).unwrap();
            fresh[k] = t.elapsed();
            instantiate[k] = p.instantiate;
            assert!(
                p.scores
                    .iter()
                    .zip(&out)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
        }
        // The first tenth warms up.
        if round >= rounds / 10 {
            times[0].push(w.as_secs_f64() * 1e6);
            for k in 0..2 {
                times[k + 1].push(fresh[k].as_secs_f64() * 1e6);
                inst[k].push(instantiate[k].as_secs_f64() * 1e6);
            }
        }
    }
    let [w, plain, tuned] = times.map(|mut v| median(&mut v));
    let [i_plain, i_tuned] = inst.map(|mut v| median(&mut v));
    println!(
        "| {name} | {batch} | {} | {w:.1} | {plain:.1} ({i_plain:.1}) | {tuned:.1} ({i_tuned:.1}) | {:.1} | {:.1} | {:.1}× |",
        wasm.len() / 1024,
        plain - w,
        tuned - w,
        (plain - w) / (tuned - w).max(0.1),
    );
}

/// The interleaved pass over the benchmark models.
fn summary() {
    println!(
        "\nFresh instance per call, medians in µs (instantiate alone in parentheses), \
         pagemap scan available: {}",
        wasmtime::PoolingAllocationConfig::is_pagemap_scan_available()
    );
    println!(
        "| model | batch | module KiB | warm | fresh, plain reset | fresh, kept resident | \
         overhead plain | overhead kept | overhead ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, model) in subjects() {
        interleaved(name, &model, 1, 2000);
        interleaved(name, &model, 32, 200);
    }
}

criterion_group!(benches, bench);

fn main() {
    if !std::env::args().any(|a| a == "--summary") {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
    summary();
}
