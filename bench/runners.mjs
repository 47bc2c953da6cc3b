// The runners that bench/node_bench.mjs and bench/pkg_ab.mjs time, and the
// benchmark's fixed input. A runner is `(rows, batch) => scores`, sync or
// async; rows are flat, `batch × width` values.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

import { KilnModule } from "../web/abi/abi.js";

/** Values per row of an input of `shape` (batch dimension excluded). */
export const rowWidth = (shape) => shape.reduce((a, b) => a * b, 1);

/** The benchmark's row, ((i * 37) mod 255) / 255, and 32 copies of it. */
export function benchRows(width) {
  const row = Float32Array.from({ length: width }, (_, i) => ((i * 37) % 255) / 255);
  const x32 = new Float32Array(width * 32);
  for (let b = 0; b < 32; b++) x32.set(row, b * width);
  return { row, x32 };
}

/** A microsecond clock. */
export const now = () => Number(process.hrtime.bigint()) / 1e3;

/**
 * A module built by `kiln build`, instantiated once and driven through its
 * raw ABI (web/abi/abi.js). `copy` copies the scores out of the module's
 * memory, as a caller keeping them must; without it the runner returns a
 * view.
 */
export async function kilnAbi(bytes, width, copy = true) {
  const model = await KilnModule.load(bytes);
  if (model.inputLen !== width) throw new Error(`the module takes ${model.inputLen} values per row, not ${width} (--shape)`);
  return copy ? (x, batch) => model.predict(x, batch) : (x, batch) => model.run(x, batch);
}

/** A wasm-bindgen package directory (scripts/web.sh) running the module `bytes` with `Model.fromBytes`. */
export async function kilnPackage(dir, bytes) {
  const { initSync, Model } = await import(path.resolve(dir, "kiln.js"));
  initSync({ module: readFileSync(path.resolve(dir, "kiln_bg.wasm")) });
  const model = Model.fromBytes(bytes);
  return (x, batch) => model.predict(x, batch);
}

/** onnxruntime-web's wasm backend (one thread, SIMD) on an ONNX file. */
export async function ortWeb(file, shape) {
  const require = createRequire(import.meta.url);
  const ort = await import("onnxruntime-web");
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.simd = true;
  ort.env.wasm.wasmPaths = path.dirname(require.resolve("onnxruntime-web")) + "/";
  const session = await ort.InferenceSession.create(readFileSync(file), { executionProviders: ["wasm"] });
  const [input, output] = [session.inputNames[0], session.outputNames[0]];
  return async (x, batch) => (await session.run({ [input]: new ort.Tensor("float32", x, [batch, ...shape]) }))[output].data;
}
