// Probes V8's relaxed SIMD int8 dot product: prints
// i32x4.relaxed_dot_i8x16_i7x16_add_s(splat(-1), splat(1), 0) lane 0, which
// the relaxed SIMD spec defines as -4 (b = 1 lies in 0..127, where every
// engine must agree). Node 20's pre-release implementation (behind
// --experimental-wasm-relaxed-simd) prints -8; Chrome 114+ prints -4.
// A loader choosing kiln's relaxed-SIMD twin must run such a probe: that the
// engine validates the instruction is not enough.
const body = [
  0x00, 0x20, 0x00, 0xfd, 0x0f, 0x20, 0x01, 0xfd, 0x0f, // splat(a), splat(b)
  0xfd, 0x0c, ...new Array(16).fill(0), // v128.const 0
  0xfd, 0x93, 0x02, // i32x4.relaxed_dot_i8x16_i7x16_add_s
  0xfd, 0x1b, 0x00, 0x0b, // i32x4.extract_lane 0; end
];
const bytes = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x07, 0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f, // type (i32, i32) -> i32
  0x03, 0x02, 0x01, 0x00, // one function
  0x07, 0x07, 0x01, 0x03, 0x64, 0x6f, 0x74, 0x00, 0x00, // export "dot"
  0x0a, body.length + 2, 0x01, body.length, ...body,
]);
const { instance } = await WebAssembly.instantiate(bytes, {});
console.log(instance.exports.dot(-1, 1));
