//! What one `kiln serve` request costs inside the sandbox: a fresh instance
//! from the pooling allocator (copy-on-write memory) plus one digits row,
//! beside an on-demand instance and the native kernel; and the instantiate
//! step alone (`pooled instantiate only`, timed inside the sandbox).
//!
//!     cargo bench -p kiln --bench serve

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kiln::sandbox::{EngineOptions, Limits, Sandbox};

fn bench(c: &mut Criterion) {
    let wasm = kiln::serve::demo::builtin()
        .expect("demo model")
        .wasm
        .to_vec();
    let blob = kiln::module::embedded_blob(&wasm).unwrap().unwrap();
    let kernel = kiln::kiln_guest::blob::decode(blob).unwrap().into_owned();
    let row: Vec<f32> = (0..64).map(|i| (i % 17) as f32).collect();

    let pooled = Sandbox::with_options(
        Limits::default(),
        EngineOptions {
            pool_slots: Some(16),
            max_memory_bytes: 64 << 20,
            cache_dir: None,
        },
    )
    .unwrap();
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

criterion_group!(benches, bench);
criterion_main!(benches);
