// The fallback of verify.js where WebCrypto lacks Ed25519 (or is absent:
// pages over plain http), imported only then, so browsers with WebCrypto
// Ed25519 never download it. Verification only: no secret passes through.
//
// The curve is noble's (`@noble/ed25519`, MIT, audited; pinned in
// web/browser/package.json). SHA-512 is WebCrypto's where it exists
// (`verifyAsync`), else `@noble/hashes` (MIT), imported only then, which also
// gives SHA-256. scripts/web.sh copies both next to this file as ./noble/:
// these imports resolve in a built package (web/pkg*), not in web/trust/.
//
// The rules are those of ed25519-compact, which `kiln verify` uses through
// wasmsign2: S < L; canonical encodings of A and R (y < p, no x = 0 with the
// sign bit); A and R not of small order; the cofactored equation
// [8](S·B − R − k·A) = 0. noble's strict mode (`zip215: false`) checks all
// but R's order, added here.

import * as ed from "./noble/ed25519.js";

let hashes;
const sha2 = async () => (hashes ??= await import("./noble/hashes/sha2.js"));

/** SHA-256 of `bytes` (for pages without WebCrypto at all). */
export const sha256 = async (bytes) => (await sha2()).sha256(bytes);

/** Whether `sig` is `key`'s Ed25519 signature of `msg`. */
export async function verify(key, sig, msg) {
  try {
    if (ed.Point.fromBytes(sig.subarray(0, 32)).isSmallOrder()) return false;
  } catch {
    return false; // R is no point at all
  }
  const strict = { zip215: false };
  if (globalThis.crypto?.subtle) return ed.verifyAsync(sig, msg, key, strict);
  ed.hashes.sha512 ??= (await sha2()).sha512;
  return ed.verify(sig, msg, key, strict);
}
