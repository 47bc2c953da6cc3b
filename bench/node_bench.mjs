// One peer in Node/V8 on one model: batch-1 latency, batch-32 throughput,
// peak memory and the batch-1 scores, as one JSON line (bench/run.sh runs one
// process per peer and alternates them across rounds).
//
//   node bench/node_bench.mjs --runtime ort-web|kiln-abi|kiln-bindgen \
//        --model FILE [--shape 784|1,28,28] [--iterations N] [--warmup N] [--warmup-ms MS]
//        [--output copy|view]
//
// Warm-up lasts at least --warmup calls AND --warmup-ms milliseconds (default
// 1000): V8 swaps its baseline wasm code (Liftoff) for optimised TurboFan
// code only after a background compile, which on a busy machine takes longer
// than a few hundred calls; a warm-up counted in calls alone would time
// different tiers for different runners.
//
// * ort-web: onnxruntime-web's wasm backend (one thread, SIMD) on an ONNX file;
// * kiln-abi: a module built by `kiln build`, driven through its raw ABI
//   (web/abi/abi.js). Its scores are copied out of the module's memory
//   (`--output copy`, the default, what a caller keeping them must do);
//   `--output view` returns a view instead, for timing the models cut by
//   bench/cut_models.py, whose outputs are thousands of floats wide;
// * kiln-bindgen: the wasm-bindgen package (`--package`, web/pkg by default;
//   web/pkg-cnn for CNNs; scripts/web.sh) loading the same module with
//   `Model.fromBytes`.
// The input is the benchmark's fixed row (bench/runners.mjs).
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { benchRows, kilnAbi, kilnPackage, now, ortWeb, rowWidth } from "./runners.mjs";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const iterations = Number(args.iterations ?? 2000);
const warmup = Number(args.warmup ?? 200);
const warmupMs = Number(args["warmup-ms"] ?? 1000);
const shape = (args.shape ?? "784").split(",").map(Number);
const width = rowWidth(shape);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

const make = {
  "ort-web": (file) => ortWeb(file, shape),
  "kiln-abi": (file) => kilnAbi(readFileSync(file), width, (args.output ?? "copy") === "copy"),
  "kiln-bindgen": (file) => kilnPackage(path.join(repo, args.package ?? "web/pkg"), readFileSync(file)),
}[args.runtime];
if (!make || !args.model) {
  console.error("usage: node bench/node_bench.mjs --runtime ort-web|kiln-abi|kiln-bindgen --model FILE [--shape 784] [--iterations N] [--warmup N] [--warmup-ms MS] [--output copy|view] [--package web/pkg-cnn]");
  process.exit(2);
}
const run = await make(args.model);
const { row: x1, x32 } = benchRows(width);

async function timed(x, batch, n) {
  const samples = [];
  for (let i = 0; i < n; i++) {
    const t = now();
    await run(x, batch);
    samples.push(now() - t);
  }
  return samples.sort((a, b) => a - b);
}
const warmStart = performance.now();
for (let i = 0; i < warmup || performance.now() - warmStart < warmupMs; i++) {
  await run(x1, 1);
  if (i % 8 === 0) await run(x32, 32);
}
const one = await timed(x1, 1, iterations);
const many = await timed(x32, 32, Math.max(Math.floor(iterations / 8), 10));
const scores = Array.from(await run(x1, 1));
const names = { "ort-web": "onnxruntime-web (Node, wasm SIMD, 1 thread)", "kiln-abi": "kiln in Node (raw ABI)", "kiln-bindgen": "kiln in Node (wasm-bindgen package)" };
console.log(
  JSON.stringify({
    runtime: names[args.runtime],
    median_us: one[Math.floor(one.length / 2)],
    p99_us: one[Math.floor(one.length * 0.99)],
    batch32_per_s: 32e6 / many[Math.floor(many.length / 2)],
    peak_rss_kib: Math.round(process.resourceUsage().maxRSS),
    scores,
  }),
);
