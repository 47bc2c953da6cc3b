// kiln edge worker: serves ONE kiln model module over the KServe v2 REST
// subset that `kiln serve` speaks, in Cloudflare Workers / workerd.
//
// `kiln build MODEL --target worker -o DIR` writes it next to model.wasm,
// with web/abi/abi.js (the raw ABI client) inlined in place of its import,
// so the written worker.js stands alone. The module is imported as a
// compiled WebAssembly.Module, the only way Workers accept wasm. One
// instance per isolate, created on first use and dropped after any failure,
// so a failed request never poisons the next; a kiln-built module keeps no
// state from one call to the next (tests/worker checks the bits). With the
// binding KILN_FRESH_INSTANCE = "1", every request gets a new instance
// instead, so not even a module written to remember can carry one caller's
// data into another's answer (docs/security.md: what it costs). The deadline
// is the platform's CPU limit per request: JavaScript cannot interrupt a
// running wasm call.
//
// Built with `--public-key KEY.pub`, the worker verifies the module at cold
// start (the isolate's first request; web/trust/verify.js, inlined like the
// ABI client) and answers every request with 500 and the reason if it fails.
// Workers compile `model.wasm` at upload and never show its bytes to
// JavaScript, nor compile bytes at run time, so the bundle also carries the
// same bytes as `model.bin` (a Data module): those are verified, and
// `model.wasm` is held to them in what JavaScript can see of a compiled
// module — its custom sections (`signature`, `kiln.meta`) and, once
// instantiated, its memory, where every data segment (the model) lies. Its
// code is the one part a worker cannot compare (docs/security.md).
//
// Routes:
//   GET  /v2/health/live · /v2/health/ready · /v2
//   GET  /v2/models/{m}[/versions/{v}] · /v2/models/{m}[/versions/{v}]/ready
//   POST /v2/models/{m}[/versions/{v}]/infer
// Errors are {"error": "..."} with 400 (bad JSON, shape, datatype, data),
// 404 (unknown model/path), 405 (wrong method), 413 (body too large),
// 415 (not JSON), 500 (the module failed).

import { KilnError, KilnModule } from "../abi/abi.js";
import { verifyModule } from "../trust/verify.js";
import model from "./model.wasm";
// `kiln build --public-key` puts the key and model.bin's bytes here.
const TRUST = null;

/** Largest request body accepted, in bytes. */
const MAX_BODY = 8 << 20;
const VERSION = "0.1.0";

const meta = readMeta(model);
const inputLen = meta.input.shape.reduce((a, b) => a * b, 1);
const outputLen = meta.output.shape.reduce((a, b) => a * b, 1);

/** @type {KilnModule | null} */
let instance = null;

function readMeta(module) {
  const sections = WebAssembly.Module.customSections(module, "kiln.meta");
  if (sections.length === 0) {
    throw new Error("model.wasm has no kiln.meta section: build it with `kiln build`");
  }
  return JSON.parse(new TextDecoder().decode(sections[0]));
}

/** The check of a worker built with a key: one promise per isolate. */
let verified = null;

/**
 * Verifies model.bin with TRUST's key, then that model.wasm is those bytes
 * as far as a compiled module shows: custom sections and data segments.
 */
async function verify() {
  const bytes = new Uint8Array(TRUST.bytes);
  try {
    await verifyModule(bytes, TRUST.publicKey);
  } catch (e) {
    throw new Error(`model.bin: ${e.message}`);
  }
  const differs = (what) => {
    throw new Error(`model.wasm is not model.bin (their ${what} differ): rebuild the worker with kiln build`);
  };
  const sections = wasmSections(bytes);
  for (const name of ["signature", "kiln.meta"]) {
    const compiled = WebAssembly.Module.customSections(model, name).map((s) => new Uint8Array(s));
    const signed = sections.custom.filter((c) => c.name === name).map((c) => c.data);
    if (compiled.length !== signed.length || compiled.some((c, i) => !same(c, signed[i]))) {
      differs(`\`${name}\` sections`);
    }
  }
  const memory = new WebAssembly.Instance(model, {}).exports.memory;
  for (const { offset, data } of sections.data) {
    if (!memory || offset + data.length > memory.buffer.byteLength) differs("memories");
    if (!same(new Uint8Array(memory.buffer, offset, data.length), data)) differs("data segments");
  }
}

function same(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * The custom sections and active data segments (`i32.const` offsets) of a
 * module that verified; a shape kiln does not build is refused.
 */
function wasmSections(b) {
  let at = 8;
  const u32 = () => {
    let v = 0;
    for (let s = 0; ; s += 7) {
      const x = b[at++];
      v += (x & 127) * 2 ** s;
      if (x < 128 || s > 28) return v;
    }
  };
  const out = { custom: [], data: [] };
  while (at < b.length) {
    const id = b[at++];
    const size = u32();
    const end = at + size;
    if (id === 0) {
      const n = u32();
      out.custom.push({ name: new TextDecoder().decode(b.subarray(at, at + n)), data: b.subarray(at + n, end) });
    } else if (id === 11) {
      for (let count = u32(); count > 0; count--) {
        const flags = u32();
        if (flags !== 0 || b[at++] !== 0x41) throw new Error("model.bin: a data segment kiln does not build");
        let offset = 0;
        for (let s = 0; ; s += 7) {
          const x = b[at++];
          offset += (x & 127) * 2 ** s;
          if (x < 128) break;
        }
        at++; // end
        const n = u32();
        out.data.push({ offset, data: b.subarray(at, (at += n)) });
      }
    }
    at = end;
  }
  return out;
}

class HttpError extends Error {
  constructor(status, message, headers = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

function json(body, status = 200, headers = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/**
 * Runs `batch` rows (a Float32Array of batch × inputLen) through the
 * isolate's instance, or through a new one if `fresh`.
 */
function predict(rows, batch, fresh) {
  const make = () => new KilnModule(new WebAssembly.Instance(model, {}));
  const module = fresh ? make() : (instance ??= make());
  try {
    return module.predict(rows, batch);
  } catch (e) {
    // After a trap or a failed call the instance's state is unknown: drop it.
    if (!fresh) instance = null;
    if (e instanceof KilnError && e.code === 0) {
      throw new HttpError(413, `batch of ${batch} rows does not fit in the model's memory`);
    }
    if (e instanceof KilnError) throw new HttpError(500, `${e.message} (see docs/abi.md)`);
    throw new HttpError(500, `the model failed: ${e.message}`);
  }
}

function modelMetadata() {
  return {
    name: meta.name,
    versions: [meta.version],
    platform: "kiln",
    inputs: [{ name: meta.input.name, datatype: meta.input.datatype, shape: [-1, ...meta.input.shape] }],
    outputs: [{ name: meta.output.name, datatype: meta.output.datatype, shape: [-1, ...meta.output.shape] }],
  };
}

/** Reads the body as JSON, enforcing content type and size. */
async function readJson(request) {
  const type = request.headers.get("content-type");
  if (type !== null && !/^application\/json\s*(;|$)/i.test(type)) {
    throw new HttpError(415, `unsupported Content-Type "${type}": send application/json`);
  }
  if (request.headers.has("inference-header-content-length")) {
    throw new HttpError(400, "the binary tensor extension is not supported by this worker: send JSON");
  }
  const declared = Number(request.headers.get("content-length") ?? 0);
  if (declared > MAX_BODY) throw new HttpError(413, `request body of ${declared} bytes exceeds ${MAX_BODY}`);
  const bytes = await readCapped(request);
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new HttpError(400, `malformed JSON: ${e.message}`);
  }
}

/** The body's bytes; stops reading (413) once it exceeds MAX_BODY. */
async function readCapped(request) {
  if (request.body === null) return new Uint8Array(0);
  const chunks = [];
  let size = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY) {
      await reader.cancel();
      throw new HttpError(413, `request body exceeds ${MAX_BODY} bytes`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** Flattens `data` (flat or nested to the shape's depth) into a Float32Array. */
function tensorData(input, count) {
  const name = input.name;
  const flat = Array.isArray(input.data) ? input.data.flat(Infinity) : null;
  if (flat === null) throw new HttpError(400, `input \`${name}\`: \`data\` must be an array of numbers`);
  if (flat.length !== count) {
    throw new HttpError(400, `input \`${name}\`: shape [${input.shape}] needs ${count} values but data has ${flat.length}`);
  }
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const v = flat[i];
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new HttpError(400, `input \`${name}\`: data[${i}] is ${typeof v === "number" ? v : JSON.stringify(v)}, not a finite number`);
    }
    out[i] = v;
  }
  return out;
}

async function infer(request, fresh) {
  const body = await readJson(request);
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new HttpError(400, "the request body must be a JSON object with `inputs`");
  }
  const inputs = body.inputs;
  if (!Array.isArray(inputs)) throw new HttpError(400, "missing `inputs` array");
  if (inputs.length !== 1) throw new HttpError(400, `expected 1 input but got ${inputs.length}`);
  const input = inputs[0];
  if (input === null || typeof input !== "object") throw new HttpError(400, "`inputs[0]` must be an object");
  if (input.name !== meta.input.name) {
    throw new HttpError(400, `unknown input \`${input.name}\`; the model's input is \`${meta.input.name}\``);
  }
  if (input.datatype !== "FP32") {
    throw new HttpError(400, `input \`${input.name}\`: datatype ${JSON.stringify(input.datatype)} is not supported; send FP32`);
  }
  const shape = input.shape;
  if (!Array.isArray(shape) || shape.length < 2 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new HttpError(400, `input \`${input.name}\`: shape must be [batch, ${meta.input.shape}] (non-negative integers)`);
  }
  const [batch, ...row] = shape;
  const rowLen = row.reduce((a, b) => a * b, 1);
  if (rowLen !== inputLen || batch < 1) {
    throw new HttpError(400, `input \`${input.name}\`: shape [${shape}] does not match [batch ≥ 1, ${meta.input.shape}]`);
  }
  if (body.outputs !== undefined) {
    if (!Array.isArray(body.outputs) || body.outputs.some((o) => o?.name !== meta.output.name)) {
      throw new HttpError(400, `unknown output requested; the model's output is \`${meta.output.name}\``);
    }
  }
  const scores = predict(tensorData(input, batch * inputLen), batch, fresh);
  const response = {
    model_name: meta.name,
    model_version: meta.version,
    outputs: [{ name: meta.output.name, datatype: "FP32", shape: [batch, outputLen], data: Array.from(scores) }],
  };
  if (body.id !== undefined) response.id = String(body.id);
  return json(response);
}

/** Routes one request; every failure becomes an HttpError. */
async function route(request, env) {
  const url = new URL(request.url);
  const parts = url.pathname.split("/").filter((p) => p !== "");
  const method = request.method;
  const only = (allowed, handler) => {
    if (method !== allowed && !(allowed === "GET" && method === "HEAD")) {
      throw new HttpError(405, `${method} is not allowed on ${url.pathname}; use ${allowed}`, { allow: allowed });
    }
    return handler();
  };
  if (parts[0] !== "v2") throw new HttpError(404, `no route for ${url.pathname}; try /v2/models/${meta.name}`);
  if (parts.length === 1) return only("GET", () => json({ name: "kiln-worker", version: VERSION, extensions: [] }));
  if (parts[1] === "health" && parts.length === 3 && (parts[2] === "live" || parts[2] === "ready")) {
    return only("GET", () => json({ [parts[2]]: true }));
  }
  if (parts[1] !== "models" || parts.length < 3) throw new HttpError(404, `no route for ${url.pathname}`);
  const name = decodeURIComponent(parts[2]);
  if (name !== meta.name) throw new HttpError(404, `unknown model \`${name}\`; this worker serves \`${meta.name}\``);
  let rest = parts.slice(3);
  if (rest[0] === "versions") {
    const version = rest[1] === undefined ? "" : decodeURIComponent(rest[1]);
    if (version !== meta.version) {
      throw new HttpError(404, `unknown version \`${version}\` of model \`${meta.name}\`; it has \`${meta.version}\``);
    }
    rest = rest.slice(2);
  }
  if (rest.length === 0) return only("GET", () => json(modelMetadata()));
  if (rest.length === 1 && rest[0] === "ready") return only("GET", () => json({ name: meta.name, ready: true }));
  if (rest.length === 1 && rest[0] === "infer") return only("POST", () => infer(request, env?.KILN_FRESH_INSTANCE === "1"));
  throw new HttpError(404, `no route for ${url.pathname}`);
}

export default {
  async fetch(request, env, ctx) {
    try {
      if (TRUST !== null) {
        verified ??= verify();
        await verified.catch((e) => {
          throw new HttpError(500, `refusing to serve: ${e.message}`);
        });
      }
      return await route(request, env);
    } catch (e) {
      if (e instanceof HttpError) return json({ error: e.message }, e.status, e.headers);
      return json({ error: `internal error: ${e?.message ?? e}` }, 500);
    }
  },
};
