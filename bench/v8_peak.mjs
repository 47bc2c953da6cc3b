// How many f32 multiply-adds per nanosecond V8 sustains on this machine, in
// the shape kiln's kernels use them: wasm SIMD128 `f32x4.mul` then
// `f32x4.add` (no fused multiply-add — wasm has no deterministic one, and
// kiln's results must be bit-identical everywhere), A independent
// accumulators, one vector load per multiply from an L1-resident buffer.
// This is the ceiling any f32 kernel in V8 runs under; docs/benchmarks.md
// ("What bounds the f32 models in Node") divides the benchmark models'
// multiply-adds by it.
//
//   node bench/v8_peak.mjs    # A = 4, 6, 8, 10, 12 over 4 KiB; A = 8 and 6 over 1 MiB
//
// Prints, per variant, the median ns per loop iteration over 40 interleaved
// calls of 1 M iterations each (after a 1 s warm-up that lets V8 tier up to
// TurboFan), the multiply-adds per ns (4·A per iteration) and the bytes
// read per ns. The 1 MiB variant streams its operands from beyond L1, as a
// batch-1 dense layer streams its weights.

/** LEB128 of an unsigned integer. */
const uleb = (n) => {
  const out = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
};
const sleb = (n) => {
  const out = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
};
const section = (id, body) => [id, ...uleb(body.length), ...body];
const vec = (items) => [...uleb(items.length), ...items.flat()];
const simd = (op) => [0xfd, ...uleb(op)];
const [F32X4_SPLAT, F32X4_ADD, F32X4_MUL, F32X4_EXTRACT_LANE, V128_LOAD] = [0x13, 0xe4, 0xe6, 0x1f, 0x00];

/**
 * `run(n: i32) -> f32`: n iterations of `a_i += load(p + 16 i) · x`, p
 * walking a `bytes`-long region (a power of two) round and round.
 */
function module(accumulators, bytes) {
  // Locals: 0 = n (param), 1 = p (i32), 2 = x (v128), 3.. = a_i (v128).
  const a = (i) => 3 + i;
  const body = [0x43, ...new Uint8Array(new Float32Array([0.5]).buffer), ...simd(F32X4_SPLAT), 0x21, 2];
  body.push(0x03, 0x40); // loop
  for (let i = 0; i < accumulators; i++) {
    body.push(0x20, a(i), 0x20, 1, ...simd(V128_LOAD), 4, ...uleb(16 * i));
    body.push(0x20, 2, ...simd(F32X4_MUL), ...simd(F32X4_ADD), 0x21, a(i));
  }
  // p = (p + 16 A) & (bytes − 1): 4 KiB stays in L1; 1 MiB streams like
  // the MLP's 940 KB of weights at batch 1.
  body.push(0x20, 1, 0x41, ...sleb(16 * accumulators), 0x6a, 0x41, ...sleb(bytes - 1), 0x71, 0x21, 1);
  // n -= 1; loop while n != 0
  body.push(0x20, 0, 0x41, 1, 0x6b, 0x22, 0, 0x0d, 0, 0x0b);
  body.push(0x20, a(0));
  for (let i = 1; i < accumulators; i++) body.push(0x20, a(i), ...simd(F32X4_ADD));
  body.push(...simd(F32X4_EXTRACT_LANE), 0, 0x0b);
  const locals = vec([[1, 0x7f], [1 + accumulators, 0x7b]]);
  const func = [...locals, ...body];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, 1, 0x7f, 1, 0x7d]])), // (i32) -> f32
    ...section(3, vec([[0]])),
    ...section(5, vec([[0x00, ...uleb((bytes >> 16) + 1)]])), // + a page: a step may run past the wrap
    ...section(7, vec([[3, ..."run".split("").map((c) => c.charCodeAt(0)), 0x00, 0]])),
    ...section(10, vec([[...uleb(func.length), ...func]])),
  ]);
}

const n = 1_000_000;
const variants = [4, 6, 8, 10, 12].map((accumulators) => ({ accumulators, bytes: 4096 }));
variants.push({ accumulators: 8, bytes: 1 << 20 }, { accumulators: 6, bytes: 1 << 20 });
const runs = [];
for (const { accumulators, bytes } of variants) {
  const { instance } = await WebAssembly.instantiate(module(accumulators, bytes));
  runs.push(instance.exports.run);
}
const warm = performance.now();
while (performance.now() - warm < 1000) for (const run of runs) run(n / 20);
// Interleaved: one call of each in turn, 40 rounds, so a burst of load from
// another process lands on every variant alike.
const samples = variants.map(() => []);
for (let r = 0; r < 40; r++) {
  runs.forEach((run, k) => {
    const s = process.hrtime.bigint();
    run(n);
    samples[k].push(Number(process.hrtime.bigint() - s) / n);
  });
}
variants.forEach(({ accumulators, bytes }, k) => {
  const ns = samples[k].sort((x, y) => x - y)[samples[k].length >> 1];
  const region = bytes >= 1 << 20 ? `${bytes >> 20} MiB` : `${bytes >> 10} KiB`;
  console.log(
    `A = ${String(accumulators).padStart(2)}, ${region.padStart(6)}: ${ns.toFixed(3)} ns per iteration, ` +
      `${((4 * accumulators) / ns).toFixed(1)} multiply-adds per ns, ${((16 * accumulators) / ns).toFixed(1)} GB/s read`,
  );
});
