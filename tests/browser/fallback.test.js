// The browser package's Ed25519 fallback (web/pkg/ed25519.js over noble's
// Ed25519 and SHA-2, as scripts/web.sh builds it), in Node, against
// `kiln verify` (ed25519-compact through wasmsign2) on the same modules:
//
// * a module `kiln sign` signed: both accept it, with WebCrypto's SHA-512
//   and with noble's (no WebCrypto);
// * the same module whose signature is replaced by one the key's holder can
//   make with R of small order (R = the identity, S = k·a): `kiln verify`
//   refuses it, and so does the fallback (noble's strict mode alone would
//   accept it: the R check of ed25519.js is what refuses it);
// * S + L in place of S (a non-canonical S): both refuse it.

import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { REPO, keygen, kiln, scratch, trainDigits } from "../js-common/kiln.js";

const PKG = join(REPO, "web/pkg");
const fallback = await import(join(PKG, "ed25519.js"));
const ed = await import(join(PKG, "noble/ed25519.js"));
const { sha256, sha512 } = await import(join(PKG, "noble/hashes/sha2.js"));

const le = (n) => Uint8Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 255n));
const fromLe = (b) => b.reduceRight((n, x) => (n << 8n) | BigInt(x), 0n);

/** Runs `f` with `globalThis.crypto` hidden, as on a page over plain http. */
async function withoutWebCrypto(f) {
  const saved = Object.getOwnPropertyDescriptor(globalThis, "crypto");
  Object.defineProperty(globalThis, "crypto", { value: undefined, configurable: true });
  try {
    return await f();
  } finally {
    Object.defineProperty(globalThis, "crypto", saved);
  }
}

test("the fallback accepts and refuses what `kiln verify` does", async () => {
  const dir = scratch("kiln-fallback-");
  const digits = trainDigits(dir);
  const a = keygen(dir, "a");
  const signed = join(dir, "signed.wasm");
  kiln("sign", digits.module, "--key", a.secret, "-o", signed);
  const wasm = new Uint8Array(readFileSync(signed));

  // The module's one signature: the last 64 bytes of its first section
  // (`signature`, one hash set, one signature, as `kiln sign` writes).
  let at = 9;
  let size = 0;
  for (let s = 0; ; s += 7) {
    const x = wasm[at++];
    size += (x & 127) * 2 ** s;
    if (x < 128) break;
  }
  const sigAt = at + size - 64;
  const contents = wasm.subarray(at + size);
  const msg = new Uint8Array([...new TextEncoder().encode("wasmsig\x01\x01\x01"), ...sha256(contents)]);
  const key = new Uint8Array(readFileSync(a.public)).subarray(1);
  const good = wasm.slice(sigAt, sigAt + 64);
  const withSig = (sig) => {
    const out = wasm.slice();
    out.set(sig, sigAt);
    return out;
  };
  const kilnAccepts = (bytes, name) => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    try {
      kiln("verify", path, "--key", a.public);
      return true;
    } catch {
      return false;
    }
  };

  assert.equal(kilnAccepts(wasm, "good.wasm"), true, "kiln verify, the signed module");
  assert.equal(await fallback.verify(key, good, msg), true, "fallback, WebCrypto SHA-512");
  assert.equal(await withoutWebCrypto(() => fallback.verify(key, good, msg)), true, "fallback, noble SHA-512");
  assert.deepEqual(await withoutWebCrypto(() => fallback.sha256(contents)), sha256(contents));

  // R = the identity (order 1), S = k·a: S·B − k·A = R.
  ed.hashes.sha512 ??= sha512;
  const seed = new Uint8Array(readFileSync(a.secret)).subarray(1, 33);
  const { scalar, pointBytes } = ed.utils.getExtendedPublicKey(seed);
  assert.deepEqual(pointBytes, key, "the .key file's seed gives the .pub file's key");
  const L = ed.Point.CURVE().n;
  const R = ed.Point.ZERO.toBytes();
  const k = fromLe(sha512(new Uint8Array([...R, ...key, ...msg]))) % L;
  const smallR = new Uint8Array([...R, ...le((k * scalar) % L)]);
  assert.equal(ed.verify(smallR, msg, key, { zip215: false }), true, "noble strict alone accepts R of small order");
  assert.equal(kilnAccepts(withSig(smallR), "small-r.wasm"), false, "kiln verify, R of small order");
  assert.equal(await fallback.verify(key, smallR, msg), false, "fallback, R of small order");
  assert.equal(await withoutWebCrypto(() => fallback.verify(key, smallR, msg)), false);
  // Where WebCrypto has Ed25519, verify.js uses it instead: printed, as it is
  // the platform's rule (cofactorless: R' = S·B − k·A compared with R).
  const subtle = globalThis.crypto.subtle;
  const webKey = await subtle.importKey("raw", key, { name: "Ed25519" }, false, ["verify"]);
  const web = await subtle.verify({ name: "Ed25519" }, webKey, smallR, msg);
  console.log(`WebCrypto Ed25519 in Node ${process.version}: R of small order ${web ? "accepted" : "refused"}`);

  const bigS = new Uint8Array([...good.subarray(0, 32), ...le(fromLe(good.subarray(32)) + L)]);
  assert.equal(kilnAccepts(withSig(bigS), "big-s.wasm"), false, "kiln verify, S + L");
  assert.equal(await fallback.verify(key, bigS, msg), false, "fallback, S + L");
});
