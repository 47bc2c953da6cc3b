//! Where a fresh instance per request spends its time, step by step, with
//! wasmtime's epoch interruption (the sandbox's deadline) on and off.
//!
//! The engine is set up as the sandbox sets up a server's (pooling
//! allocator, copy-on-write memory, slots reset through `PAGEMAP_SCAN` with
//! `keep_resident`), but driven directly so each step can be timed:
//! instantiate; the first call (the guest decodes and validates its
//! embedded model); input + `kiln_run` (one row); dropping the store (the
//! slot's reset). The two engines are called in turn, 3,000 rounds, and the
//! medians printed (µs).
//!
//!     cargo run --release -p kiln --example fresh_breakdown -- mlp
//!     cargo run --release -p kiln --example fresh_breakdown -- lenet

use std::time::Instant;

use kiln::bench::models;
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig, Store,
};

fn engine(epoch: bool) -> Engine {
    let mut config = Config::new();
    config
        .wasm_simd(true)
        .wasm_relaxed_simd(true)
        .relaxed_simd_deterministic(false)
        .epoch_interruption(epoch);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(4)
        .total_memories(4)
        .total_tables(4)
        .max_memory_size(64 << 20);
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(kiln::sandbox::KEEP_RESIDENT);
    }
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).expect("engine")
}

/// One request, timed step by step.
fn request(engine: &Engine, pre: &InstancePre<()>, x: &[f32]) -> [f64; 4] {
    let t0 = Instant::now();
    let mut store = Store::new(engine, ());
    store.set_epoch_deadline(u64::MAX / 2);
    let instance = pre.instantiate(&mut store).expect("instantiates");
    let t1 = Instant::now();
    let len = instance
        .get_typed_func::<(), i32>(&mut store, "kiln_input_len")
        .expect("export");
    assert!(len.call(&mut store, ()).expect("call") > 0);
    let t2 = Instant::now();
    let input = instance
        .get_typed_func::<i32, i32>(&mut store, "kiln_input")
        .expect("export");
    let run = instance
        .get_typed_func::<i32, i32>(&mut store, "kiln_run")
        .expect("export");
    let memory = instance.get_memory(&mut store, "memory").expect("memory");
    let ptr = input.call(&mut store, 1).expect("call") as usize;
    memory
        .write(&mut store, ptr, bytemuck::cast_slice(x))
        .expect("input fits");
    assert_eq!(run.call(&mut store, 1).expect("call"), 0);
    let t3 = Instant::now();
    drop(store);
    let t4 = Instant::now();
    [t0, t1, t2, t3, t4]
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1e6)
        .collect::<Vec<_>>()
        .try_into()
        .expect("four steps")
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "mlp".into());
    let model = match which.as_str() {
        "lenet" => models::lenet(11),
        _ => models::mlp(&models::MLP_WIDTHS, 7),
    };
    let wasm = kiln::module::build(&model, "bench").expect("module");
    let setups: Vec<(bool, Engine, InstancePre<()>)> = [false, true]
        .into_iter()
        .map(|epoch| {
            let engine = engine(epoch);
            let module = Module::new(&engine, &wasm).expect("compiles");
            let pre = Linker::new(&engine)
                .instantiate_pre(&module)
                .expect("no imports");
            (epoch, engine, pre)
        })
        .collect();
    let x = models::pattern_rows(1, 28 * 28);
    let mut times = vec![[(); 4].map(|_| Vec::new()); setups.len()];
    for _ in 0..3000 {
        for (k, (_, engine, pre)) in setups.iter().enumerate() {
            for (step, t) in request(engine, pre, &x).into_iter().enumerate() {
                times[k][step].push(t);
            }
        }
    }
    println!("{which}: instantiate / first call (decode + validate) / input + run / drop (µs)");
    for ((epoch, ..), steps) in setups.iter().zip(&mut times) {
        let medians: Vec<String> = steps
            .iter_mut()
            .map(|v| {
                v.sort_by(f64::total_cmp);
                format!("{:.1}", v[v.len() / 2])
            })
            .collect();
        println!("  epoch interruption {epoch:5}: {}", medians.join(" / "));
    }
}
