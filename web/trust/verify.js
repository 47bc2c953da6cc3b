// Checks a kiln model module's signature in JavaScript, as `kiln verify`
// does in Rust (runtime/src/trust/sign.rs): the WebAssembly tool-conventions
// format of `wasmsign2`, a custom section `signature` first in the module
// holding Ed25519 signatures over "wasmsig" ‖ 01 01 01 ‖ SHA-256 hashes of
// every byte after that section (code, data, `kiln.meta`, everything).
//
// Used by the browser package (web/pkg*/verify.js, imported by kiln.js:
// `Model.load(url, { publicKey })`) and by the worker (`kiln build --target
// worker --public-key`, which inlines this file). SHA-256 and Ed25519 come
// from WebCrypto; where it lacks Ed25519 (or is absent: pages served over
// plain http), ./ed25519.js (noble's Ed25519 and SHA-2) is imported on
// demand. Every length read is checked against the bytes left.

const FALLBACK = "./ed25519.js"; // a variable: bundlers leave the import alone
const fallback = () => import(FALLBACK);
const subtle = () => globalThis.crypto?.subtle;

/** The message of every refusal, as `kiln verify` words it. */
const fail = (why) => {
  throw new Error(why);
};
const malformed = (why) => fail(`the \`signature\` section is malformed: ${why}`);
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/** A cursor over `b[at..end]` whose reads never pass `end`. */
function cursor(b, at = 0, end = b.length) {
  const c = {
    get at() {
      return at;
    },
    take(n, what) {
      if (n > end - at) malformed(`${what}: ${n} bytes declared, ${end - at} left`);
      return b.subarray(at, (at += n));
    },
    /** An unsigned LEB128 of at most 32 bits. */
    u32(what) {
      let v = 0;
      for (let s = 0; s < 35; s += 7) {
        const x = c.take(1, what)[0];
        v += (x & 127) * 2 ** s;
        if (x < 128) return v;
      }
      malformed(`${what}: an integer longer than 5 bytes`);
    },
    count(what, max) {
      const n = c.u32(what);
      if (n > max) malformed(`${n} ${what}, more than the format's ${max}`);
      return n;
    },
    /** A length-prefixed slice, as a cursor. */
    sub(what) {
      const s = c.take(c.u32(what), what);
      return cursor(s);
    },
  };
  return c;
}

/**
 * The 32-byte Ed25519 key in `key`: the `.pub` file `kiln keygen` writes
 * (33 bytes: 0x01, then the key), the 32 bytes themselves, an SPKI DER or
 * PEM key, or 64/66 hex digits of the first two.
 */
export function publicKeyBytes(key) {
  let b = key;
  if (typeof key === "string") {
    const pem = /-----BEGIN PUBLIC KEY-----([^-]*)-----END PUBLIC KEY-----/.exec(key);
    b = pem
      ? Uint8Array.from(atob(pem[1].replace(/\s/g, "")), (ch) => ch.charCodeAt(0))
      : /^([0-9a-f]{2})+$/i.test(key.trim())
        ? Uint8Array.from(key.trim().match(/../g), (x) => parseInt(x, 16))
        : null;
  } else if (key instanceof ArrayBuffer) b = new Uint8Array(key);
  else if (ArrayBuffer.isView(key)) b = new Uint8Array(key.buffer, key.byteOffset, key.byteLength);
  else b = null;
  if (b?.length === 33 && b[0] === 1) return b.slice(1);
  if (b?.length === 32) return b.slice();
  // SPKI: SEQUENCE { SEQUENCE { OID 1.3.101.112 } BIT STRING { key } }.
  if (b?.length === 44 && hex(b.subarray(0, 12)) === "302a300506032b6570032100") return b.slice(12);
  fail(
    "publicKey: not an Ed25519 public key (give the .pub file `kiln keygen` wrote, as bytes or hex, the 32-byte key, or a PEM/DER public key)",
  );
}

async function sha256(bytes) {
  const s = subtle();
  return s ? new Uint8Array(await s.digest("SHA-256", bytes)) : (await fallback()).sha256(bytes);
}

/** Ed25519 over `msg`: WebCrypto's where it has the algorithm, else ./ed25519.js. */
async function ed25519(key, sig, msg) {
  const s = subtle();
  if (s) {
    try {
      const k = await s.importKey("raw", key, { name: "Ed25519" }, false, ["verify"]);
      return await s.verify({ name: "Ed25519" }, k, sig, msg);
    } catch (e) {
      if (e?.name !== "NotSupportedError") return false;
    }
  }
  return (await fallback()).verify(key, sig, msg);
}

/**
 * Resolves if `bytes` (a Uint8Array) is a module carrying a signature by
 * `publicKey` over exactly its contents; rejects with an Error saying why
 * not (unsigned, malformed, tampered, or signed by another key).
 */
export async function verifyModule(bytes, publicKey) {
  const key = publicKeyBytes(publicKey);
  if (bytes.length < 8 || hex(bytes.subarray(0, 8)) !== "0061736d01000000") {
    fail("not a WebAssembly module: only modules (`kiln build --sign`) carry signatures, not model files");
  }
  const unsigned = () =>
    fail("unsigned: the module has no `signature` section first (sign it with `kiln sign` or `kiln build --sign`)");
  const m = cursor(bytes, 8);
  if (bytes.length === 8 || m.take(1, "section id")[0] !== 0) unsigned();
  const section = m.sub("section");
  const contents = bytes.subarray(m.at);
  const name = section.take(section.u32("section name"), "section name");
  if (new TextDecoder().decode(name) !== "signature") unsigned();
  return check(section, contents, key);
}

async function check(section, contents, key) {
  for (const what of ["specification version", "content type", "hash function"]) {
    const v = section.u32(what);
    if (v !== 1) malformed(`${what} ${v}; only 1 is defined`);
  }
  const sets = [];
  for (let i = section.count("signed hash sets", 64); i > 0; i--) {
    const set = section.sub("signed hash set");
    const hashes = [];
    for (let n = set.count("hashes", 64); n > 0; n--) hashes.push(set.take(32, "hash"));
    const sigs = [];
    for (let n = set.count("signatures", 256); n > 0; n--) {
      const sig = set.sub("signature");
      sig.take(sig.u32("key id"), "key id");
      const alg = sig.take(1, "algorithm")[0];
      const bytes = sig.take(sig.u32("signature bytes"), "signature bytes");
      if (alg === 1 && bytes.length === 64) sigs.push(bytes);
    }
    sets.push({ hashes, sigs });
  }
  const actual = hex(await sha256(contents));
  if (!sets.some((s) => s.hashes.some((h) => hex(h) === actual))) {
    fail(`tampered: the module's contents (sha256 ${actual}) are not what was signed; it changed after signing`);
  }
  const domain = new TextEncoder().encode("wasmsig\x01\x01\x01");
  for (const { hashes, sigs } of sets) {
    if (!hashes.some((h) => hex(h) === actual)) continue;
    const msg = new Uint8Array(domain.length + 32 * hashes.length);
    msg.set(domain);
    hashes.forEach((h, i) => msg.set(h, domain.length + 32 * i));
    for (const sig of sigs) if (await ed25519(key, sig, msg)) return;
  }
  fail("signed by no trusted key (the contents match the signature, the key does not)");
}
