// `kiln build --target worker` output goes through `wrangler deploy
// --dry-run`: wrangler parses its wrangler.toml, bundles worker.js with the
// model module as a WebAssembly.Module import, and stops before uploading
// (no Cloudflare account needed). KILN names the kiln binary.
//
//   npm ci --prefix tests/deploy/wrangler && KILN=target/debug/kiln node --test tests/deploy/wrangler/

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const kiln = process.env.KILN;

test("wrangler deploy --dry-run accepts kiln's worker", () => {
  assert.ok(kiln, "set KILN to the kiln binary");
  const dir = mkdtempSync(join(tmpdir(), "kiln-wrangler-"));
  execFileSync(kiln, ["train", "--data", "builtin:digits", "--model", "softmax", "--seed", "1",
    "-o", join(dir, "m.safetensors")], { stdio: "ignore" });
  const worker = join(dir, "worker");
  execFileSync(kiln, ["build", join(dir, "m.safetensors"), "--target", "worker", "-o", worker]);
  const out = join(dir, "out");
  const log = execFileSync(join(here, "node_modules", ".bin", "wrangler"),
    ["deploy", "--dry-run", "--outdir", out], {
      cwd: worker,
      env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" },
      encoding: "utf8",
    });
  assert.match(log, /--dry-run: exiting now/);
  assert.match(log, /Total Upload/);
  const files = readdirSync(out);
  assert.ok(files.includes("worker.js"), files.join(", "));
  // The module is uploaded as its own part, byte for byte.
  const wasm = files.find((f) => f.endsWith("model.wasm"));
  assert.ok(wasm, files.join(", "));
  assert.deepEqual(readFileSync(join(out, wasm)), readFileSync(join(worker, "model.wasm")));
});

test("wrangler deploy --dry-run accepts a verifying worker (--public-key): model.bin goes up as Data", () => {
  assert.ok(kiln, "set KILN to the kiln binary");
  const dir = mkdtempSync(join(tmpdir(), "kiln-wrangler-"));
  execFileSync(kiln, ["train", "--data", "builtin:digits", "--model", "softmax", "--seed", "1",
    "-o", join(dir, "m.safetensors")], { stdio: "ignore" });
  execFileSync(kiln, ["keygen", "-o", join(dir, "signer")]);
  const worker = join(dir, "worker");
  execFileSync(kiln, ["build", join(dir, "m.safetensors"), "--target", "worker", "--sign", join(dir, "signer.key"),
    "--public-key", join(dir, "signer.pub"), "-o", worker]);
  const out = join(dir, "out");
  const log = execFileSync(join(here, "node_modules", ".bin", "wrangler"),
    ["deploy", "--dry-run", "--outdir", out], {
      cwd: worker,
      env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" },
      encoding: "utf8",
    });
  assert.match(log, /--dry-run: exiting now/);
  const files = readdirSync(out);
  for (const name of ["model.wasm", "model.bin"]) {
    const part = files.find((f) => f.endsWith(name));
    assert.ok(part, `${name} in ${files.join(", ")}`);
    assert.deepEqual(readFileSync(join(out, part)), readFileSync(join(worker, "model.wasm")));
  }
});
