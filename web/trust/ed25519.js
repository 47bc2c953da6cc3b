// The fallback of verify.js where WebCrypto lacks Ed25519 (or is absent:
// pages over plain http): Ed25519 verification (RFC 8032, cofactorless, as
// ed25519-compact, which `kiln verify` uses through wasmsign2), SHA-512 and
// SHA-256 in plain JavaScript (the curve and SHA-512 over BigInt). Imported only when needed, so
// browsers with WebCrypto Ed25519 never download it. Verification only: no
// secret ever passes through here, so constant time does not matter.

const M32 = 0xffffffffn;
const M64 = (1n << 64n) - 1n;

/** The first `n` primes. */
function primes(n) {
  const out = [];
  for (let c = 2; out.length < n; c++) if (out.every((p) => c % p)) out.push(c);
  return out;
}

/** floor(n^(1/k)) for k = 2 or 3 (Newton's method on BigInt). */
function iroot(n, k) {
  let x = 1n << BigInt(Math.ceil(n.toString(2).length / k) + 1);
  for (;;) {
    const y = ((BigInt(k) - 1n) * x + n / x ** BigInt(k - 1)) / BigInt(k);
    if (y >= x) return x;
    x = y;
  }
}

/**
 * SHA-2 over `w`-bit BigInt words (64: SHA-512); the round constants
 * and initial values are the fractional bits of the primes' cube and square
 * roots, computed here rather than listed.
 */
function sha2(bytes, w, rounds, [s0, s1, g0, g1]) {
  const W = BigInt(w);
  const mask = w === 32 ? M32 : M64;
  const ps = primes(rounds).map(BigInt);
  const K = ps.map((p) => iroot(p << (3n * W), 3) & mask);
  const H = ps.slice(0, 8).map((p) => iroot(p << (2n * W), 2) & mask);
  const rotr = (x, n) => ((x >> BigInt(n)) | (x << (W - BigInt(n)))) & mask;
  const S = (x, [a, b, c], shift) => rotr(x, a) ^ rotr(x, b) ^ (shift ? x >> BigInt(c) : rotr(x, c));
  // Blocks of 16 words; the padding ends with the length in bits (2 words).
  const blockBytes = 2 * w;
  const total = Math.ceil((bytes.length + 1 + w / 4) / blockBytes) * blockBytes;
  const m = new Uint8Array(total);
  m.set(bytes);
  m[bytes.length] = 0x80;
  let bits = BigInt(bytes.length) * 8n;
  for (let i = total - 1; bits > 0n; i--, bits >>= 8n) m[i] = Number(bits & 255n);
  const word = (at) => {
    let v = 0n;
    for (let i = 0; i < w / 8; i++) v = (v << 8n) | BigInt(m[at + i]);
    return v;
  };
  for (let at = 0; at < total; at += blockBytes) {
    const x = [];
    for (let t = 0; t < rounds; t++) {
      x[t] = t < 16 ? word(at + (t * w) / 8) : (S(x[t - 2], g1, 1) + x[t - 7] + S(x[t - 15], g0, 1) + x[t - 16]) & mask;
    }
    let [a, b, c, d, e, f, g, h] = H;
    for (let t = 0; t < rounds; t++) {
      const t1 = (h + S(e, s1) + ((e & f) ^ (~e & mask & g)) + K[t] + x[t]) & mask;
      const t2 = (S(a, s0) + ((a & b) ^ (a & c) ^ (b & c))) & mask;
      [h, g, f, e, d, c, b, a] = [g, f, e, (d + t1) & mask, c, b, a, (t1 + t2) & mask];
    }
    [a, b, c, d, e, f, g, h].forEach((v, i) => (H[i] = (H[i] + v) & mask));
  }
  const out = new Uint8Array(w); // w/8 bytes × 8 words
  H.forEach((v, i) => {
    for (let j = 0; j < w / 8; j++) out[(i * w) / 8 + j] = Number((v >> BigInt(w - 8 - 8 * j)) & 255n);
  });
  return out;
}

export const sha512 = (b) => sha2(b, 64, 80, [[28, 34, 39], [14, 18, 41], [1, 8, 7], [19, 61, 6]]);

/** SHA-256 over 32-bit Numbers: ~60× faster than over BigInt, for whole modules. */
export function sha256(bytes) {
  const K = primes(64).map((p) => Number(iroot(BigInt(p) << 96n, 3) & M32));
  const H = primes(8).map((p) => Number(iroot(BigInt(p) << 64n, 2) & M32));
  const total = Math.ceil((bytes.length + 9) / 64) * 64;
  const m = new Uint8Array(total);
  m.set(bytes);
  m[bytes.length] = 0x80;
  const v = new DataView(m.buffer);
  v.setUint32(total - 8, Math.floor(bytes.length / 2 ** 29));
  v.setUint32(total - 4, (bytes.length * 8) >>> 0);
  const r = (x, n) => (x >>> n) | (x << (32 - n));
  const x = new Uint32Array(64);
  for (let at = 0; at < total; at += 64) {
    for (let t = 0; t < 64; t++) {
      x[t] = t < 16
        ? v.getUint32(at + 4 * t)
        : (r(x[t - 2], 17) ^ r(x[t - 2], 19) ^ (x[t - 2] >>> 10)) + x[t - 7] + (r(x[t - 15], 7) ^ r(x[t - 15], 18) ^ (x[t - 15] >>> 3)) + x[t - 16];
    }
    let [a, b, c, d, e, f, g, h] = H;
    for (let t = 0; t < 64; t++) {
      const t1 = (h + (r(e, 6) ^ r(e, 11) ^ r(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + x[t]) | 0;
      const t2 = ((r(a, 2) ^ r(a, 13) ^ r(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      [h, g, f, e, d, c, b, a] = [g, f, e, (d + t1) | 0, c, b, a, (t1 + t2) | 0];
    }
    [a, b, c, d, e, f, g, h].forEach((y, i) => (H[i] = (H[i] + y) | 0));
  }
  const out = new DataView(new ArrayBuffer(32));
  H.forEach((y, i) => out.setUint32(4 * i, y));
  return new Uint8Array(out.buffer);
}

// The curve: -x² + y² = 1 + d·x²·y² over p = 2^255 − 19; points in extended
// coordinates [X, Y, Z, T] with x = X/Z, y = Y/Z, x·y = T/Z.
const P = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const mod = (a) => ((a % P) + P) % P;
function pow(b, e) {
  let r = 1n;
  for (b = mod(b); e > 0n; e >>= 1n, b = (b * b) % P) if (e & 1n) r = (r * b) % P;
  return r;
}
const inv = (a) => pow(a, P - 2n);
const D = mod(-121665n * inv(121666n));
const SQRT_M1 = pow(2n, (P - 1n) / 4n);

/** Unified addition (add-2008-hwcd-3; also doubles). */
function add([X1, Y1, Z1, T1], [X2, Y2, Z2, T2]) {
  const a = mod((Y1 - X1) * (Y2 - X2));
  const b = mod((Y1 + X1) * (Y2 + X2));
  const c = mod(2n * D * T1 * T2);
  const d = mod(2n * Z1 * Z2);
  const [e, f, g, h] = [b - a, d - c, d + c, b + a];
  return [mod(e * f), mod(g * h), mod(f * g), mod(e * h)];
}

function mul(pt, k) {
  let r = [0n, 1n, 1n, 0n];
  for (; k > 0n; k >>= 1n, pt = add(pt, pt)) if (k & 1n) r = add(r, pt);
  return r;
}

const le = (b) => b.reduceRight((v, x) => (v << 8n) | BigInt(x), 0n);

/** The point a 32-byte encoding names, or null. */
function decode(b) {
  const sign = b[31] >> 7;
  const y = le(b) & ((1n << 255n) - 1n);
  if (y >= P) return null;
  const x2 = mod((y * y - 1n) * inv(D * y * y + 1n));
  let x = pow(x2, (P + 3n) / 8n);
  if (mod(x * x - x2) !== 0n) x = mod(x * SQRT_M1);
  if (mod(x * x - x2) !== 0n || (x === 0n && sign)) return null;
  if (Number(x & 1n) !== sign) x = P - x;
  return [x, y, 1n, mod(x * y)];
}

function encode([X, Y, Z]) {
  const zi = inv(Z);
  let v = mod(Y * zi) | ((mod(X * zi) & 1n) << 255n);
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++, v >>= 8n) out[i] = Number(v & 255n);
  return out;
}

const BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202n;
const BY = mod(4n * inv(5n));
const BASE = [BX, BY, 1n, mod(BX * BY)];

/** Whether `sig` (64 bytes) is `key`'s (32 bytes) Ed25519 signature of `msg`. */
export function verify(key, sig, msg) {
  const A = decode(key);
  const s = le(sig.subarray(32, 64));
  if (A === null || sig.length !== 64 || s >= L) return false;
  const r = sig.subarray(0, 32);
  const h = le(sha512(Uint8Array.from([...r, ...key, ...msg]))) % L;
  const [X, Y, Z, T] = A;
  const check = encode(add(mul(BASE, s), mul([P - X, Y, Z, P - T], h)));
  return check.every((x, i) => x === r[i]);
}
