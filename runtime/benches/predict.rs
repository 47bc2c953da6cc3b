//! Batch-1 prediction of an MLP 784-256-128-10 (random weights): the model
//! module in wasmtime against the same kernel natively.
//!
//! `cargo bench -p kiln --bench predict`. Criterion measures each variant;
//! a final interleaved pass prints the medians and the wasm/native ratio from
//! one process, so the ratio holds on a noisy machine.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group};
use kiln::model::{FORMAT_VERSION, Graph, InputSpec, LayerSpec, ModelFile, Task, Tensor};
use kiln::sandbox::{Limits, Sandbox};
use rand::{Rng, SeedableRng};
use wasmtime::{Engine, Instance, Module, Store, TypedFunc};

/// A random MLP with the given widths (He-uniform weights, seed 7).
fn mlp(widths: &[usize]) -> ModelFile {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut tensors = BTreeMap::new();
    let mut layers = Vec::new();
    for (i, w) in widths.windows(2).enumerate() {
        let limit = (6.0 / w[0] as f32).sqrt();
        let weight: Vec<f32> = (0..w[0] * w[1])
            .map(|_| rng.random_range(-limit..limit))
            .collect();
        tensors.insert(format!("w{i}"), Tensor::new(vec![w[1], w[0]], weight));
        tensors.insert(format!("b{i}"), Tensor::new(vec![w[1]], vec![0.01; w[1]]));
        layers.push(LayerSpec::Dense {
            weight: format!("w{i}"),
            bias: format!("b{i}"),
        });
        layers.push(LayerSpec::Relu);
    }
    layers.pop();
    layers.push(LayerSpec::Softmax);
    ModelFile {
        graph: Graph {
            format: FORMAT_VERSION,
            name: "mlp".into(),
            version: "1".into(),
            task: Task::Classification,
            input: InputSpec {
                name: "input".into(),
                shape: vec![widths[0]],
                features: vec![],
            },
            target: None,
            labels: vec![],
            layers,
        },
        tensors,
    }
}

/// A module instance kept alive between calls (what a browser or worker does).
struct Warm {
    store: Store<()>,
    memory: wasmtime::Memory,
    input: TypedFunc<i32, i32>,
    run: TypedFunc<i32, i32>,
    output: TypedFunc<(), i32>,
}

impl Warm {
    fn new(wasm: &[u8]) -> Self {
        let engine = Engine::default();
        let module = Module::new(&engine, wasm).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        Warm {
            memory: instance.get_memory(&mut store, "memory").unwrap(),
            input: instance.get_typed_func(&mut store, "kiln_input").unwrap(),
            run: instance.get_typed_func(&mut store, "kiln_run").unwrap(),
            output: instance.get_typed_func(&mut store, "kiln_output").unwrap(),
            store,
        }
    }

    fn predict(&mut self, x: &[f32], out: &mut [f32]) {
        let p = self.input.call(&mut self.store, 1).unwrap() as usize;
        self.memory
            .write(&mut self.store, p, bytemuck::cast_slice(x))
            .unwrap();
        assert_eq!(self.run.call(&mut self.store, 1).unwrap(), 0);
        let o = self.output.call(&mut self.store, ()).unwrap() as usize;
        self.memory
            .read(&self.store, o, bytemuck::cast_slice_mut(out))
            .unwrap();
    }
}

fn setup() -> (kiln_guest::Model<'static>, Vec<u8>, Vec<f32>) {
    let model = mlp(&[784, 256, 128, 10]);
    let kernel = model.to_kernel().unwrap();
    let wasm = kiln::module::build(&model, "bench").unwrap();
    let x: Vec<f32> = (0..784).map(|i| ((i * 37) % 255) as f32 / 255.0).collect();
    (kernel, wasm, x)
}

fn bench(c: &mut Criterion) {
    let (kernel, wasm, x) = setup();
    let sandbox = Sandbox::new(Limits::default()).unwrap();
    let loaded = sandbox.load(&wasm).unwrap();
    let mut warm = Warm::new(&wasm);
    let mut out = vec![0.0f32; 10];

    let mut g = c.benchmark_group("mlp-784-256-128-10/batch-1");
    g.bench_function("native", |b| {
        b.iter(|| kernel.predict(black_box(&x)).unwrap())
    });
    g.bench_function("wasmtime (warm instance)", |b| {
        b.iter(|| warm.predict(black_box(&x), &mut out))
    });
    g.bench_function("wasmtime (fresh sandboxed instance)", |b| {
        b.iter(|| sandbox.predict(&loaded, black_box(&x)).unwrap())
    });
    g.finish();
}

/// Interleaved medians in one process: the ratio that `docs/benchmarks.md`
/// quotes.
fn summary() {
    let (kernel, wasm, x) = setup();
    let sandbox = Sandbox::new(Limits::default()).unwrap();
    let loaded = sandbox.load(&wasm).unwrap();
    let mut warm = Warm::new(&wasm);
    let mut out = vec![0.0f32; 10];
    let (mut n, mut w, mut f) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3000 {
        let t = Instant::now();
        black_box(kernel.predict(black_box(&x)).unwrap());
        n.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        warm.predict(black_box(&x), &mut out);
        w.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        black_box(sandbox.predict(&loaded, black_box(&x)).unwrap());
        f.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (n, w, f) = (median(&mut n), median(&mut w), median(&mut f));
    println!("\nMLP 784-256-128-10, batch 1, median of 3000 interleaved runs:");
    println!("  native                      {n:8.1} µs");
    println!(
        "  wasmtime, warm instance     {w:8.1} µs   ({:.2}× native)",
        w / n
    );
    println!(
        "  wasmtime, fresh instance    {f:8.1} µs   ({:.2}× native)",
        f / n
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
