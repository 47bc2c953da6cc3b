//! tract-onnx on one ONNX file: batch-1 latency and batch-32 throughput as one
//! JSON line, in the shape bench/report.py reads (same input as the other
//! peers: `x[i] = ((i * 37) % 255) / 255`, repeated per row).
//!
//!     kiln-bench-tract MODEL.onnx ITERATIONS WARMUP SHAPE   (SHAPE: 784 or 1,28,28)

use std::time::Instant;

use tract_onnx::prelude::*;

type Plan = TypedRunnableModel<TypedModel>;

fn plan(path: &str, batch: usize, width: &[usize]) -> TractResult<Plan> {
    let mut shape = vec![batch];
    shape.extend_from_slice(width);
    tract_onnx::onnx()
        .model_for_path(path)?
        .with_input_fact(0, f32::fact(&shape).into())?
        .into_optimized()?
        .into_runnable()
}

fn input(batch: usize, width: &[usize]) -> Tensor {
    let row: usize = width.iter().product();
    let data: Vec<f32> = (0..batch * row)
        .map(|i| ((i % row * 37) % 255) as f32 / 255.0)
        .collect();
    let mut shape = vec![batch];
    shape.extend_from_slice(width);
    tract_ndarray::ArrayD::from_shape_vec(shape, data)
        .expect("shape matches")
        .into()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = &args[1];
    let iterations: usize = args.get(2).map_or(Ok(1000), |s| s.parse())?;
    let warmup: usize = args.get(3).map_or(Ok(100), |s| s.parse())?;
    let width: Vec<usize> = args
        .get(4)
        .map_or("784", String::as_str)
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let one = plan(path, 1, &width)?;
    let many = plan(path, 32, &width)?;
    let (x1, x32) = (input(1, &width), input(32, &width));
    for _ in 0..warmup {
        one.run(tvec!(x1.clone().into()))?;
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let x = tvec!(x1.clone().into());
        let t = Instant::now();
        one.run(x)?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    let batches = (iterations / 8).max(10);
    let t = Instant::now();
    for _ in 0..batches {
        many.run(tvec!(x32.clone().into()))?;
    }
    let per_s = (batches * 32) as f64 / t.elapsed().as_secs_f64();
    let scores = one.run(tvec!(x1.into()))?;
    let scores: Vec<f32> = scores[0].to_array_view::<f32>()?.iter().copied().collect();
    println!(
        "{{\"runtime\": \"tract native\", \"median_us\": {}, \"p99_us\": {}, \"batch32_per_s\": {}, \"peak_rss_kib\": {}, \"scores\": {:?}}}",
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
        per_s,
        peak_rss_kib(),
        scores
    );
    Ok(())
}
