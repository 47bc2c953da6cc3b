// Signed modules in the browser package (#17), in headless Chromium:
// `Model.load(source, { publicKey })` verifies the module's wasmsign2
// signature before reading it, with WebCrypto's Ed25519 and, where a browser
// lacks it, with the package's fallback (web/pkg/ed25519.js over noble's
// Ed25519, and noble's SHA-2 where WebCrypto is absent).
//
// * the signed digits module loads with its key (as the .pub file's bytes,
//   and as hex) and predicts every held-out row with the unsigned module's
//   native bits, in all three builds;
// * one flipped byte in the code, in the model blob (data segment) and in
//   `kiln.meta` is refused as tampered; a module signed by another key is
//   refused, and so is an unsigned one; each of these bytes loads WITHOUT
//   a key (so the refusal is the signature check's, not the loader's);
// * the same with WebCrypto's Ed25519 reported missing, and with no
//   WebCrypto at all (pages over plain http): the fallback (noble's
//   Ed25519; its SHA-2 too without WebCrypto) is fetched and gives the same
//   answers;
// * `Model.fromBytes(bytes, { publicKey })` throws (it cannot verify).
//
// The server is the real `kiln serve --static web/`; the tampered files are
// handed to the page as bytes.

import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { chromium } from "playwright-core";

import {
  REPO, bits, csvRows, flipped, keygen, kiln, nativeScores, scratch, startServe, tamperPoints, trainDigits,
} from "../js-common/kiln.js";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const WEB = join(REPO, "web");

describe("signed modules in headless Chromium", () => {
  const dir = scratch("kiln-browser-signed-");
  let digits;
  let server;
  let browser;
  /** name → bytes (as plain arrays, for page.evaluate). */
  const files = {};
  let key;
  let keyHex;

  before(async () => {
    digits = trainDigits(dir);
    const a = keygen(dir, "a");
    const b = keygen(dir, "b");
    const signed = join(dir, "signed.wasm");
    const other = join(dir, "other.wasm");
    kiln("sign", digits.module, "--key", a.secret, "-o", signed);
    kiln("sign", digits.module, "--key", b.secret, "-o", other);
    const good = readFileSync(signed);
    const points = tamperPoints(good);
    for (const [part, at] of Object.entries(points)) files[part] = Array.from(flipped(good, at));
    files.other = Array.from(readFileSync(other));
    files.unsigned = Array.from(readFileSync(digits.module));
    key = Array.from(readFileSync(a.public));
    keyHex = Buffer.from(key).toString("hex");
    const repo = join(dir, "repo");
    mkdirSync(join(repo, "signed", "1"), { recursive: true });
    copyFileSync(signed, join(repo, "signed", "1", "model.wasm"));
    server = await startServe(repo, dir, "--static", WEB);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu", "--no-first-run"] });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /**
   * Runs the checks in a page of `pkg`, with WebCrypto as `crypto` says:
   * "native", "no-ed25519" (importKey refuses the algorithm, as in browsers
   * without it) or "none" (no crypto.subtle). Returns what the page saw and
   * the URLs it fetched.
   */
  async function run(pkg, crypto, rows) {
    const page = await browser.newPage();
    const problems = [];
    page.on("pageerror", (e) => problems.push(e.message));
    page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
    const fetched = [];
    page.on("request", (r) => fetched.push(new URL(r.url()).pathname));
    // An empty page of the server's origin (answered here), so the package
    // and the model come from kiln serve.
    await page.route(`${server.base}/blank.html`, (r) => r.fulfill({ body: "<!doctype html><title>kiln</title>", contentType: "text/html" }));
    await page.goto(`${server.base}/blank.html`);
    const got = await page.evaluate(
      async ({ pkg, crypto, files, key, keyHex, rows }) => {
        if (crypto === "no-ed25519") {
          const importKey = SubtleCrypto.prototype.importKey;
          SubtleCrypto.prototype.importKey = function (format, data, alg, ...rest) {
            if ((alg?.name ?? alg) === "Ed25519") {
              return Promise.reject(new DOMException("Unrecognized name", "NotSupportedError"));
            }
            return importKey.call(this, format, data, alg, ...rest);
          };
        }
        if (crypto === "none") Object.defineProperty(globalThis.crypto, "subtle", { get: () => undefined });
        const { default: init, Model } = await import(`/${pkg}/kiln.js`);
        await init();
        const publicKey = new Uint8Array(key);
        const outcome = async (source, options) => {
          try {
            const m = await Model.load(source, options);
            m.free();
            return "loaded";
          } catch (e) {
            return `${e instanceof Error}: ${e.message}`;
          }
        };
        const out = { refused: {}, unverified: {} };
        // verify.js is fetched by the first load with a key, not before.
        const verifyFetched = () => performance.getEntriesByType("resource").some((e) => new URL(e.name).pathname === `/${pkg}/verify.js`);
        (await Model.load(new Uint8Array(files.unsigned))).free();
        out.verifyBeforeKey = verifyFetched();
        for (const [name, bytes] of Object.entries(files)) {
          out.refused[name] = await outcome(new Uint8Array(bytes), { publicKey });
          out.unverified[name] = await outcome(new Uint8Array(bytes));
        }
        // The good module, fetched from kiln serve, verified with the key as
        // bytes and as hex: every held-out row.
        out.scores = [];
        for (const k of [publicKey, keyHex]) {
          const m = await Model.load("/models/signed/model.wasm", { publicKey: k });
          out.scores.push(Array.from(m.predict(new Float32Array(rows.flat()))));
          m.free();
        }
        out.verifyAfterKey = verifyFetched();
        try {
          Model.fromBytes(new Uint8Array(files.unsigned), { publicKey });
          out.fromBytes = "no error";
        } catch (e) {
          out.fromBytes = e.message;
        }
        return out;
      },
      { pkg, crypto, files, key, keyHex, rows },
    );
    await page.close();
    assert.deepEqual(problems, [], `${pkg}, ${crypto}: console errors or uncaught exceptions`);
    return { got, fetched };
  }

  for (const [pkg, crypto] of [["pkg", "native"], ["pkg", "no-ed25519"], ["pkg", "none"], ["pkg-cnn", "native"], ["pkg-rnn", "native"], ["pkg-graph", "native"]]) {
    test(`web/${pkg}, WebCrypto ${crypto}: the signed module loads with native's bits; tampered, foreign and unsigned ones are refused`, async () => {
      const rows = csvRows(digits.testCsv, 64).map((r) => Array.from(r));
      const want = nativeScores(digits.module, rows, dir).map(bits);
      const { got, fetched } = await run(pkg, crypto, rows);
      for (const out of got.scores) {
        const scores = Array.from({ length: rows.length }, (_, i) => bits(out.slice(i * 10, (i + 1) * 10)));
        assert.deepEqual(scores, want, "verified module in Chromium vs kiln predict --native");
      }
      for (const part of ["code", "data", "meta"]) {
        assert.equal(got.unverified[part], "loaded", `${part}: without a key the flipped byte loads`);
        assert.match(got.refused[part], /^true: model bytes: tampered: the module's contents \(sha256 [0-9a-f]{64}\) are not what was signed/, part);
      }
      assert.equal(got.unverified.other, "loaded");
      assert.equal(got.refused.other, "true: model bytes: signed by no trusted key (the contents match the signature, the key does not)");
      assert.equal(got.unverified.unsigned, "loaded");
      assert.match(got.refused.unsigned, /^true: model bytes: unsigned: the module has no `signature` section first/);
      assert.match(got.fromBytes, /^Model\.fromBytes cannot verify a signature/);
      assert.deepEqual([got.verifyBeforeKey, got.verifyAfterKey], [false, true], "verify.js fetched by the first load with a key");
      // The fallback is ed25519.js over noble's Ed25519 (SHA-512 from
      // WebCrypto), and noble's SHA-2 only without WebCrypto at all.
      for (const [file, want] of [
        ["ed25519.js", crypto !== "native"],
        ["noble/ed25519.js", crypto !== "native"],
        ["noble/hashes/sha2.js", crypto === "none"],
      ]) {
        assert.equal(fetched.includes(`/${pkg}/${file}`), want, `${file} fetched`);
      }
    });
  }
});
