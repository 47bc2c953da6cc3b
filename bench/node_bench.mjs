// One peer in Node/V8 on one model: batch-1 latency, batch-32 throughput,
// peak memory and the batch-1 scores, as one JSON line (bench/run.sh runs one
// process per peer and alternates them across rounds).
//
//   node bench/node_bench.mjs --runtime ort-web|kiln-abi|kiln-bindgen \
//        --model FILE [--shape 784|1,28,28] [--iterations N] [--warmup N] [--warmup-ms MS]
//        [--output copy|view]
//
// Warm-up lasts at least --warmup calls AND --warmup-ms milliseconds (default
// 1000): V8 first runs wasm with its baseline compiler (Liftoff) and swaps in
// optimised TurboFan code only after a function has used up its tier-up budget
// and a background compile has finished — 0.1–0.5 s on a busy 2-core machine,
// longer than a few hundred calls take. A warm-up counted in calls alone timed
// Liftoff code for some runners and TurboFan code for others.
//
// * ort-web: onnxruntime-web's wasm backend (one thread, SIMD) on an ONNX file;
// * kiln-abi: a module built by `kiln build`, instantiated once and driven
//   through its raw ABI (docs/abi.md) — no glue. Its scores are copied out
//   of the module's memory (`--output copy`, the default, what a caller
//   keeping them must do); `--output view` returns a view instead, for
//   timing models cut by bench/cut_models.py, whose outputs are thousands
//   of floats wide (copying 3,456 floats costs ~1 µs);
// * kiln-bindgen: the wasm-bindgen package (web/pkg, scripts/web.sh) loading
//   the same module with `Model.fromBytes`.
// The input is the benchmark's fixed row, ((i * 37) mod 255) / 255.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const iterations = Number(args.iterations ?? 2000);
const warmup = Number(args.warmup ?? 200);
const warmupMs = Number(args["warmup-ms"] ?? 1000);
const copyOut = (args.output ?? "copy") === "copy";
const shape = (args.shape ?? "784").split(",").map(Number);
const width = shape.reduce((a, b) => a * b, 1);
const now = () => Number(process.hrtime.bigint()) / 1e3; // µs
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** A kiln module kept instantiated, driven through its raw ABI. */
async function kilnAbi(file) {
  const { instance } = await WebAssembly.instantiate(readFileSync(file), {});
  const k = instance.exports;
  const inLen = k.kiln_input_len(), outLen = k.kiln_output_len();
  if (inLen !== width) throw new Error(`module takes ${inLen} values per row, not ${width}`);
  return (x, batch) => {
    const p = k.kiln_input(batch);
    new Float32Array(k.memory.buffer, p, batch * inLen).set(x);
    if (k.kiln_run(batch) !== 0) throw new Error("kiln_run failed");
    const out = new Float32Array(k.memory.buffer, k.kiln_output(), batch * outLen);
    return copyOut ? out.slice() : out;
  };
}

/** The wasm-bindgen package (web/pkg) with the module's embedded model. */
async function kilnBindgen(file) {
  const pkg = path.join(repo, "web/pkg");
  const { initSync, Model } = await import(path.join(pkg, "kiln.js"));
  initSync({ module: readFileSync(path.join(pkg, "kiln_bg.wasm")) });
  const model = Model.fromBytes(readFileSync(file));
  return (x, batch) => model.predict(x, batch);
}

async function ortWeb(file) {
  const require = createRequire(import.meta.url);
  const ort = await import("onnxruntime-web");
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.simd = true;
  ort.env.wasm.wasmPaths = path.dirname(require.resolve("onnxruntime-web")) + "/";
  const session = await ort.InferenceSession.create(readFileSync(file), { executionProviders: ["wasm"] });
  const [input, output] = [session.inputNames[0], session.outputNames[0]];
  return async (x, batch) => (await session.run({ [input]: new ort.Tensor("float32", x, [batch, ...shape]) }))[output].data;
}

const make = { "ort-web": ortWeb, "kiln-abi": kilnAbi, "kiln-bindgen": kilnBindgen }[args.runtime];
if (!make || !args.model) {
  console.error("usage: node bench/node_bench.mjs --runtime ort-web|kiln-abi|kiln-bindgen --model FILE [--shape 784] [--iterations N] [--warmup N] [--warmup-ms MS] [--output copy|view]");
  process.exit(2);
}
const run = await make(args.model);
const row = Float32Array.from({ length: width }, (_, i) => ((i * 37) % 255) / 255);
const x1 = row;
const x32 = new Float32Array(width * 32);
for (let b = 0; b < 32; b++) x32.set(row, b * width);

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
