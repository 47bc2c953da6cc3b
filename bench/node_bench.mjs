// onnxruntime-web (wasm backend, one thread, SIMD) beside kiln modules in the
// same Node process, interleaved round by round so the ratios hold on a noisy
// machine. Prints one JSON line per runtime.
//
//   node bench/node_bench.mjs --ort MODEL.onnx --kiln MODULE.wasm [--iterations N]
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const iterations = Number(args.iterations ?? 2000);
const rounds = 10;
const now = () => Number(process.hrtime.bigint()) / 1e3; // µs

/** A kiln module kept instantiated, driven through its raw ABI (docs/abi.md). */
async function kilnRunner(file) {
  const { instance } = await WebAssembly.instantiate(await readFile(file), {});
  const k = instance.exports;
  const inLen = k.kiln_input_len(), outLen = k.kiln_output_len();
  return {
    width: inLen,
    run(x, batch) {
      const p = k.kiln_input(batch);
      new Float32Array(k.memory.buffer, p, batch * inLen).set(x);
      if (k.kiln_run(batch) !== 0) throw new Error("kiln_run failed");
      return new Float32Array(k.memory.buffer, k.kiln_output(), batch * outLen).slice();
    },
  };
}

async function ortRunner(file) {
  const require = createRequire(import.meta.url);
  const ort = await import("onnxruntime-web");
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.simd = true;
  ort.env.wasm.wasmPaths = path.dirname(require.resolve("onnxruntime-web")) + "/";
  const session = await ort.InferenceSession.create(await readFile(file), { executionProviders: ["wasm"] });
  const input = session.inputNames[0];
  const width = 784;
  return {
    width,
    async run(x, batch) {
      const out = await session.run({ [input]: new ort.Tensor("float32", x, [batch, width]) });
      return out[session.outputNames[0]].data;
    },
    version: ort.env.versions?.web ?? "",
  };
}

const runners = {};
if (args.ort) runners[`onnxruntime-web (${path.basename(args.ort)})`] = await ortRunner(args.ort);
if (args.kiln) runners[`kiln in Node/V8 (${path.basename(args.kiln)})`] = await kilnRunner(args.kiln);

const samples = Object.fromEntries(Object.keys(runners).map((n) => [n, []]));
const throughput = Object.fromEntries(Object.keys(runners).map((n) => [n, []]));
const x1 = Float32Array.from({ length: 784 }, (_, i) => ((i * 37) % 255) / 255);
const x32 = Float32Array.from({ length: 784 * 32 }, (_, i) => ((i * 37) % 255) / 255);
for (const r of Object.values(runners)) for (let i = 0; i < 200; i++) await r.run(x1, 1);
for (let round = 0; round < rounds; round++) {
  for (const [name, r] of Object.entries(runners)) {
    for (let i = 0; i < iterations / rounds; i++) {
      const t = now();
      await r.run(x1, 1);
      samples[name].push(now() - t);
    }
    const batches = Math.max(iterations / rounds / 8, 5);
    const t = now();
    for (let i = 0; i < batches; i++) await r.run(x32, 32);
    throughput[name].push((batches * 32) / ((now() - t) / 1e6));
  }
}
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const p99 = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length * 0.99)];
for (const name of Object.keys(runners)) {
  console.log(
    JSON.stringify({
      runtime: name,
      median_us: median(samples[name]),
      p99_us: p99(samples[name]),
      batch32_per_s: median(throughput[name]),
      peak_rss_kib: Math.round(process.resourceUsage().maxRSS),
    }),
  );
}
