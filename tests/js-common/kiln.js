// Helpers shared by kiln's JavaScript end-to-end tests (tests/browser,
// tests/worker): the kiln binary, a running `kiln serve`, scratch
// directories, a trained digits model, native reference scores and bit-exact
// comparison.

import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** The kiln binary: $KILN, else the debug build `cargo test` leaves behind. */
export const KILN = process.env.KILN ?? join(REPO, "target/debug/kiln");
if (!existsSync(KILN)) {
  throw new Error(`kiln binary not found at ${KILN}: run \`cargo build -p kiln\` first or set KILN`);
}

/** Runs `kiln ...args`; returns stdout, throws with stderr on failure. */
export function kiln(...args) {
  try {
    return execFileSync(KILN, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    throw new Error(`kiln ${args.join(" ")} failed:\n${e.stderr}`);
  }
}

/**
 * Starts `kiln serve REPO` on a free loopback port (no gRPC; its compile
 * cache in `dir`) with `extra` arguments (e.g. `--static web`). Resolves to
 * `{ base, stop }` once the server has printed its address; `stop()` sends
 * SIGTERM and rejects unless kiln drains and exits with status 0.
 */
export async function startServe(repo, dir, ...extra) {
  const config = join(dir, `kiln-serve-${process.hrtime.bigint()}.toml`);
  writeFileSync(config, `[server]\ncache_dir = ${JSON.stringify(join(dir, "serve-cache"))}\n`);
  const args = ["serve", repo, "--http", "127.0.0.1:0", "--no-grpc", "--config", config, ...extra];
  const child = spawn(KILN, args, { stdio: ["ignore", "pipe", "pipe"] });
  const kill = () => child.kill("SIGKILL");
  process.on("exit", kill);
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal)));
  const first = await new Promise((resolve, reject) => {
    let out = "";
    // Keep reading stdout after the first line so the pipe never fills.
    child.stdout.on("data", (d) => {
      out += d;
      if (out.includes("\n")) resolve(out.slice(0, out.indexOf("\n")));
    });
    exited.then((code) => reject(new Error(`kiln ${args.join(" ")} exited (${code}) before listening:\n${stderr}`)));
  });
  const http = first.match(/^kiln serve: http=(\S+)/)?.[1];
  if (!http) {
    kill();
    throw new Error(`kiln serve printed ${JSON.stringify(first)}, not its address:\n${stderr}`);
  }
  return {
    base: `http://${http}`,
    async stop() {
      process.off("exit", kill);
      child.kill("SIGTERM");
      const code = await exited;
      if (code !== 0) throw new Error(`kiln serve exited with ${code} after SIGTERM:\n${stderr}`);
    },
  };
}

/** A scratch directory removed when the process exits. */
export function scratch(prefix = "kiln-js-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Trains the digits classifier (seed 1) into `dir`; returns its paths. */
export function trainDigits(dir) {
  const d = {
    model: join(dir, "digits.safetensors"),
    module: join(dir, "digits.wasm"),
    testCsv: join(dir, "test.csv"),
  };
  kiln("train", "--data", "builtin:digits", "--seed", "1", "-o", d.model, "--test-out", d.testCsv);
  kiln("build", d.model, "-o", d.module);
  return d;
}

/** The first `width` columns of every data row of a CSV file with a header. */
export function csvRows(path, width) {
  return readFileSync(path, "utf8")
    .trim()
    .split("\n")
    .slice(1)
    .map((line) => Float32Array.from(line.split(",").slice(0, width).map(Number)));
}

/** Scores of `kiln predict --native` for `rows` (arrays of numbers). */
export function nativeScores(model, rows, dir) {
  return predictScores(model, rows, dir, "--native");
}

/** Scores of `kiln predict MODEL ...flags` for `rows` (no flag: wasmtime). */
export function predictScores(model, rows, dir, ...flags) {
  const input = join(dir, `rows-${process.hrtime.bigint()}.json`);
  writeFileSync(input, JSON.stringify(rows.map((r) => Array.from(r))));
  return kiln("predict", model, ...flags, "--input", input)
    .trim()
    .split("\n")
    .map((line) => Float32Array.from(JSON.parse(line).scores));
}

/** The f32 bit patterns of `values` (so -0, NaN payloads, ulps all count). */
export function bits(values) {
  return Array.from(new Uint32Array(Float32Array.from(values).buffer));
}

/** A deterministic PRNG (mulberry32) in [0, 1). */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Writes a kiln model file: an MLP with layer widths `sizes` (e.g.
 * [784, 256, 128, 10]), ReLU between layers, softmax on top, seeded random
 * weights. The safetensors layout follows docs/model-format.md.
 */
export function writeMlp(path, sizes, seed = 1) {
  const next = rng(seed);
  const tensors = [];
  const layers = [];
  for (let i = 0; i + 1 < sizes.length; i++) {
    const [inputs, outputs] = [sizes[i], sizes[i + 1]];
    const scale = Math.sqrt(2 / inputs);
    const w = Float32Array.from({ length: inputs * outputs }, () => (next() * 2 - 1) * scale);
    const b = Float32Array.from({ length: outputs }, () => (next() * 2 - 1) * 0.1);
    tensors.push([`l${i}.weight`, [outputs, inputs], w], [`l${i}.bias`, [outputs], b]);
    layers.push({ op: "dense", weight: `l${i}.weight`, bias: `l${i}.bias` });
    layers.push(i + 2 < sizes.length ? { op: "relu" } : { op: "softmax" });
  }
  const out = sizes[sizes.length - 1];
  const graph = {
    format: 1,
    name: "mlp",
    version: "1",
    task: "classification",
    input: { name: "input", shape: [sizes[0]] },
    labels: Array.from({ length: out }, (_, i) => String(i)),
    layers,
  };
  writeModelFile(path, graph, tensors);
}

/**
 * Writes a recurrent kiln model file over `[steps, features]` rows
 * (docs/model-format.md): one `cell` layer — "rnn", "gru", "gru-orig" (GRU
 * with linear_before_reset false) or "lstm" — of `hidden` units, forward
 * or bidirectional, its final states read by a dense head of `outputs`
 * classes and softmax. Seeded random weights, in ONNX's tensor layout.
 */
export function writeRecurrent(path, { cell, hidden, steps, features, outputs = 10, bidirectional = false }, seed = 1) {
  const next = rng(seed);
  const random = (n, scale) => Float32Array.from({ length: n }, () => (next() * 2 - 1) * scale);
  const d = bidirectional ? 2 : 1;
  const gates = ({ rnn: 1, lstm: 4 }[cell] ?? 3) * hidden; // G·H rows: G gates of H units
  const op = cell.replace("-orig", "");
  const tensors = [
    ["rec.w", [d, gates, features], random(d * gates * features, 0.15)],
    ["rec.r", [d, gates, hidden], random(d * gates * hidden, 0.4)],
    ["rec.b", [d, 2 * gates], random(d * 2 * gates, 0.2)],
    ["head.weight", [outputs, d * hidden], random(outputs * d * hidden, 0.8)],
    ["head.bias", [outputs], random(outputs, 0.1)],
  ];
  const layer = { op, hidden, w: "rec.w", r: "rec.r", b: "rec.b", direction: bidirectional ? "bidirectional" : "forward" };
  if (op === "gru") layer.linear_before_reset = cell === "gru";
  const graph = {
    format: 1,
    name: cell,
    version: "1",
    task: "classification",
    input: { name: "input", shape: [steps, features] },
    labels: Array.from({ length: outputs }, (_, i) => String(i)),
    layers: [layer, { op: "dense", weight: "head.weight", bias: "head.bias" }, { op: "softmax" }],
  };
  writeModelFile(path, graph, tensors);
}

/** A safetensors file: `graph` under `__metadata__.kiln`, then F32 `tensors` ([name, shape, data]). */
function writeModelFile(path, graph, tensors) {
  const header = { __metadata__: { kiln: JSON.stringify(graph) } };
  let offset = 0;
  for (const [name, shape, data] of tensors) {
    header[name] = { dtype: "F32", shape, data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([head, Buffer.from(json), ...tensors.map(([, , d]) => Buffer.from(d.buffer))]));
}

/** Random rows of `width` values in [0, 1), seeded. */
export function randomRows(n, width, seed = 7) {
  const next = rng(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: width }, next));
}

/** A signing pair `dir/NAME.key`, `dir/NAME.pub` from `kiln keygen`. */
export function keygen(dir, name) {
  kiln("keygen", "-o", join(dir, name));
  return { secret: join(dir, `${name}.key`), public: join(dir, `${name}.pub`) };
}

/**
 * Offsets of one byte in each part of a module a tamperer would change, as
 * tests/e2e/trust.rs picks them: the middle of the code section, of the
 * model blob (the data segment starting with "KLNB") and a letter of the
 * model's name in the `kiln.meta` JSON (so the JSON stays valid).
 */
export function tamperPoints(wasm) {
  let at = 8;
  const u32 = () => {
    let v = 0;
    for (let s = 0; ; s += 7) {
      const x = wasm[at++];
      v += (x & 127) * 2 ** s;
      if (x < 128) return v;
    }
  };
  const points = {};
  while (at < wasm.length) {
    const id = wasm[at++];
    const size = u32();
    const end = at + size;
    if (id === 10) points.code = at + (size >> 1);
    if (id === 0) {
      const n = u32();
      const name = Buffer.from(wasm.subarray(at, at + n)).toString();
      if (name === "kiln.meta") points.meta = wasm.indexOf(Buffer.from('"digits"'), at) + 2;
    }
    if (id === 11) {
      for (let n = u32(); n > 0; n--) {
        if (u32() !== 0 || wasm[at++] !== 0x41) throw new Error("not an active segment at memory 0");
        while (wasm[at++] & 128); // the offset (sLEB128)
        at++; // end
        const len = u32();
        if (Buffer.from(wasm.subarray(at, at + 4)).toString() === "KLNB") points.data = at + (len >> 1);
        at += len;
      }
    }
    at = end;
  }
  if (!(points.code > 0 && points.data > 0 && points.meta > 1)) throw new Error(`tamper points not found: ${JSON.stringify(points)}`);
  return points;
}

/** `wasm` with the low bit of byte `at` flipped. */
export function flipped(wasm, at) {
  const out = Buffer.from(wasm);
  out[at] ^= 1;
  return out;
}

/**
 * MobileNetV2-0.35 on 3×96×96 with 10 classes (seeded weights): the ONNX
 * file bench/mobilenet_v2.py writes ($KILN_PYTHON, which scripts/lib.sh
 * exports; else python3), imported and built by kiln. Returns the paths
 * `{ onnx, model, module }` (in `dir`) and the row width.
 */
export function writeMobileNetV2(dir, seed = 25) {
  const onnx = join(dir, "mobilenet_v2.onnx");
  const python = process.env.KILN_PYTHON ?? "python3";
  execFileSync(python, ["-I", join(REPO, "bench/mobilenet_v2.py"), onnx, String(seed)], { stdio: ["ignore", "ignore", "inherit"] });
  const model = join(dir, "mobilenet_v2.safetensors");
  const module = join(dir, "mobilenet_v2.wasm");
  kiln("import", onnx, "-o", model);
  kiln("build", model, "-o", module);
  return { onnx, model, module, width: 3 * 96 * 96 };
}

/** `rows` through the module at `path` in this process's V8, via the raw ABI client (web/abi/abi.js). */
export async function v8Scores(path, rows) {
  const { KilnModule } = await import("../../web/abi/abi.js");
  const m = await KilnModule.load(readFileSync(path));
  const flat = rows.flatMap((r) => Array.from(r));
  const out = m.run(flat, rows.length);
  const n = m.outputLen;
  return Array.from({ length: rows.length }, (_, i) => Float32Array.from(out.subarray(i * n, (i + 1) * n)));
}
