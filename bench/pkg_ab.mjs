// A/B of browser-package builds in Node/V8, interleaved in ONE process: the
// model module through its raw ABI and each given wasm-bindgen package
// (a web/pkg directory built by scripts/web.sh) on the same module, plus
// onnxruntime-web on the same model's ONNX file if given. Round after round,
// every runner does ITERS batch-1 calls and ITERS/8 batch-32 calls, so slow
// drifts of a busy machine fall on all of them; the first 10 % of the
// samples are dropped as warm-up. Prints, per runner, the median µs of a
// batch-1 call and rows/s at batch 32, and fails if any runner's scores
// differ in one bit from the raw ABI's (batch 1 and batch 32).
//
//   node bench/pkg_ab.mjs --model M.wasm [--shape 784|1,28,28] [--onnx M.onnx] \
//        [--rounds 20] [--iters 200] PKGDIR...
//
// e.g. the package of main against this checkout's (docs/benchmarks.md,
// "Browser package"):
//   cp -r web/pkg /tmp/pkg-before   # built by scripts/web.sh on main
//   scripts/web.sh && node bench/pkg_ab.mjs --model out/bench/full/models/cnn.wasm \
//        --shape 1,28,28 /tmp/pkg-before web/pkg
import { readFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

import { benchRows, kilnAbi, kilnPackage, now, ortWeb, rowWidth } from "./runners.mjs";

const { values: opt, positionals: pkgs } = parseArgs({
  allowPositionals: true,
  options: {
    model: { type: "string" },
    shape: { type: "string", default: "784" },
    onnx: { type: "string" },
    rounds: { type: "string", default: "20" },
    iters: { type: "string", default: "200" },
  },
});
if (!opt.model) {
  console.error("usage: node bench/pkg_ab.mjs --model M.wasm [--shape 784] [--onnx M.onnx] [--rounds N] [--iters N] PKGDIR...");
  process.exit(2);
}
const shape = opt.shape.split(",").map(Number);
const width = rowWidth(shape);
const [rounds, iters] = [Number(opt.rounds), Number(opt.iters)];
const module = readFileSync(opt.model);

/** name → (input, batch) => scores (sync or async). */
const runners = new Map([["raw ABI", await kilnAbi(module, width)]]);
for (const dir of pkgs) runners.set(`package ${dir}`, await kilnPackage(dir, module));
if (opt.onnx) runners.set("onnxruntime-web", await ortWeb(opt.onnx, shape));

const { row, x32 } = benchRows(width);
const bits = (a) => Array.from(new Uint32Array(Float32Array.from(a).buffer)).join();
const abi = runners.get("raw ABI");
const want = [bits(abi(row, 1)), bits(abi(x32, 32))];
let differ = false;
for (const [name, run] of runners) {
  if (name === "onnxruntime-web") continue; // another kernel: not bit-identical
  if (bits(await run(row, 1)) !== want[0] || bits(await run(x32, 32)) !== want[1]) {
    console.error(`${name}: scores differ from the raw ABI's`);
    differ = true;
  }
}

const one = new Map([...runners.keys()].map((n) => [n, []]));
const many = new Map([...runners.keys()].map((n) => [n, []]));
for (let r = 0; r < rounds; r++) {
  for (const [name, run] of runners) {
    for (let i = 0; i < iters; i++) {
      const t = now();
      await run(row, 1);
      one.get(name).push(now() - t);
    }
    for (let i = 0; i < Math.max(iters / 8, 4); i++) {
      const t = now();
      await run(x32, 32);
      many.get(name).push(now() - t);
    }
  }
}
const median = (s) => {
  const v = s.slice(Math.floor(s.length / 10)).sort((a, b) => a - b);
  return v[Math.floor(v.length / 2)];
};
console.log(`${path.basename(opt.model)}: ${rounds} rounds × ${iters} calls, interleaved`);
for (const name of runners.keys()) {
  const [b1, b32] = [median(one.get(name)), median(many.get(name))];
  console.log(`  ${name.padEnd(36)} batch 1 ${b1.toFixed(1).padStart(7)} µs   batch 32 ${Math.round(32e6 / b32).toString().padStart(7)} rows/s`);
}
process.exit(differ ? 1 : 0);
