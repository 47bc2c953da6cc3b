// What a fresh WebAssembly instance per request costs the edge worker
// (web/worker/worker.js): for the digits model and an MLP 784-256-128-10
// (f32 and int8), the median time of one batch-1 prediction on a reused
// instance and on a new instance of the same compiled module, in Node's V8
// (the engine Workers run). docs/security.md quotes the figures.
//
//   node scripts/worker-instance-cost.mjs [--calls N]     (default 2000)
//
// Builds its modules with $KILN (default target/debug/kiln).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { KilnModule } from "../web/abi/abi.js";
import { REPO, kiln, randomRows, scratch, writeMlp } from "../tests/js-common/kiln.js";

const at = process.argv.indexOf("--calls");
const calls = at > 0 ? Number(process.argv[at + 1]) : 2000;
const dir = scratch("kiln-instance-cost-");

const models = [["digits", join(REPO, "runtime/data/digits.safetensors"), 64]];
const mlp = join(dir, "mlp.safetensors");
writeMlp(mlp, [784, 256, 128, 10], 3);
models.push(["MLP 784-256-128-10 f32", mlp, 784]);
const calib = join(dir, "calib.json");
writeFileSync(calib, JSON.stringify(randomRows(200, 784, 5).map((r) => Array.from(r))));
const int8 = join(dir, "mlp-int8.safetensors");
kiln("quantize", mlp, "--calibrate", calib, "-o", int8);
models.push(["MLP 784-256-128-10 int8", int8, 784]);

const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];

/** Median µs of `calls` runs of `f`, after as many warm-up runs. */
function time(f) {
  for (let i = 0; i < calls; i++) f();
  const us = [];
  for (let i = 0; i < calls; i++) {
    const t0 = process.hrtime.bigint();
    f();
    us.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  return median(us);
}

console.log(`node ${process.version}, ${calls} calls each, median µs per batch-1 prediction`);
console.log("| model | module bytes | reused instance | fresh instance | fresh - reused |");
console.log("|---|---|---|---|---|");
for (const [name, file, width] of models) {
  const wasm = join(dir, "m.wasm");
  kiln("build", file, "-o", wasm);
  const bytes = readFileSync(wasm);
  const module = new WebAssembly.Module(bytes);
  const row = randomRows(1, width, 9)[0];
  const reused = new KilnModule(new WebAssembly.Instance(module, {}));
  const a = time(() => reused.predict(row, 1));
  const b = time(() => new KilnModule(new WebAssembly.Instance(module, {})).predict(row, 1));
  // Interleave once more so drift of the machine shows in both columns.
  const a2 = time(() => reused.predict(row, 1));
  const b2 = time(() => new KilnModule(new WebAssembly.Instance(module, {})).predict(row, 1));
  const [r, f] = [Math.min(a, a2), Math.min(b, b2)];
  console.log(`| ${name} | ${bytes.length} | ${r.toFixed(1)} | ${f.toFixed(1)} | ${(f - r).toFixed(1)} |`);
}
