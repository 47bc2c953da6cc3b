// The browser package (web/pkg) and the demo page (web/demo), tested in real
// headless Chromium (Debian `chromium`, driven by npm `playwright-core`):
//
// * draw strokes with the mouse; the page's scores must equal the server's
//   and `kiln predict --native`'s for the same pixels, bit for bit;
// * every held-out digit, predicted in V8 from the .wasm module AND from the
//   .safetensors model file, bit-identical to native;
// * corrupt model files show their error on the page;
// * no console errors or uncaught exceptions anywhere;
// * a screenshot of the page; predictions per second in Chromium.
//
// The server is the real `kiln serve REPO --static web/`: the page at `/`,
// web/pkg, the models at /models/{m}/model.wasm|.safetensors and the v2 API
// from one process, as a user runs it. Corrupt model files are not servable
// by kiln (a broken model never loads), so the page's requests for
// /files/* are answered by Playwright (`page.route`). Run from
// scripts/test.sh after scripts/web.sh:
//   npm ci --prefix tests/browser && node --test tests/browser/

import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { chromium } from "playwright-core";

import {
  REPO, bits, csvRows, kiln, nativeScores, predictScores, randomRows, scratch, startServe, trainDigits, v8Scores, writeMlp,
  writeMobileNetV2, writeRecurrent,
} from "../js-common/kiln.js";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const WEB = join(REPO, "web");
const SCREENSHOT = process.env.KILN_SCREENSHOT ?? join(REPO, "target/browser/demo.png");

if (!existsSync(join(WEB, "pkg/kiln.js"))) {
  throw new Error("web/pkg is missing: run scripts/web.sh first");
}

/** Puts `files` (name → path) into `repo` as `NAME/1/model.*` (Triton's layout). */
function addModel(repo, name, files) {
  mkdirSync(join(repo, name, "1"), { recursive: true });
  for (const [ext, path] of Object.entries(files)) copyFileSync(path, join(repo, name, "1", `model.${ext}`));
}

describe("demo page in headless Chromium", () => {
  const dir = scratch("kiln-browser-");
  const models = join(dir, "models");
  const repo = join(dir, "repo");
  /** Corrupt files the page fetches from /files/{name} (see `open`). */
  const broken = {};
  let digits;
  let mobilenet;
  let server;
  let base;
  let browser;
  let page;
  let problems;

  before(async () => {
    mkdirSync(models);
    digits = trainDigits(models);
    // Broken models for the error tests.
    const wasm = readFileSync(digits.module);
    broken["truncated.wasm"] = wasm.subarray(0, wasm.length >> 1);
    broken["garbage.safetensors"] = Buffer.from("this is not a model file");
    const st = readFileSync(digits.model);
    broken["no-graph.safetensors"] = Buffer.concat([st.subarray(0, 8), Buffer.from(st.subarray(8).toString("latin1").replace('"kiln"', '"nope"'), "latin1")]);
    // MLP 784-256-128-10: f32 module, and int8 (static, calibrated) module.
    const mlp = join(models, "mlp.safetensors");
    writeMlp(mlp, [784, 256, 128, 10], 3);
    const calib = join(models, "calib.json");
    writeFileSync(calib, JSON.stringify(randomRows(200, 784, 5).map((r) => Array.from(r))));
    kiln("quantize", mlp, "--calibrate", calib, "-o", join(models, "mlp-int8.safetensors"));
    kiln("build", mlp, "-o", join(models, "mlp.wasm"));
    kiln("build", join(models, "mlp-int8.safetensors"), "-o", join(models, "mlp-int8.wasm"));
    // An int8 CNN module: the package leaves int8 convolution out (size budget).
    const cnn = join(models, "cnn.safetensors");
    kiln("train", "--data", "builtin:digits", "--model", "cnn:c4k3,p2,d16", "--epochs", "2", "-o", cnn);
    kiln("build", cnn, "-o", join(models, "cnn.wasm"));
    kiln("quantize", cnn, "--calibrate", "builtin:digits", "-o", join(models, "cnn-int8.safetensors"));
    kiln("build", join(models, "cnn-int8.safetensors"), "-o", join(models, "cnn-int8.wasm"));

    // Recurrent models over the digits read as 8 steps of 8 pixels (seeded
    // weights): a GRU (linear_before_reset) and a bidirectional LSTM.
    for (const [name, spec] of [["gru", { cell: "gru", hidden: 16 }], ["lstm", { cell: "lstm", hidden: 12, bidirectional: true }]]) {
      const st = join(models, `${name}.safetensors`);
      writeRecurrent(st, { ...spec, steps: 8, features: 8 }, 5);
      kiln("build", st, "-o", join(models, `${name}.wasm`));
      addModel(repo, name, { wasm: join(models, `${name}.wasm`), safetensors: st });
    }
    // The GRU with int8 weights: no build of the package holds them (size).
    const gruInt8 = join(models, "gru-int8.safetensors");
    kiln("quantize", join(models, "gru.safetensors"), "--dynamic", "-o", gruInt8);
    kiln("build", gruInt8, "-o", join(models, "gru-int8.wasm"));
    addModel(repo, "gru-int8", { wasm: join(models, "gru-int8.wasm"), safetensors: gruInt8 });

    // A graph model: MobileNetV2-0.35 on 3×96×96 (ONNX, seeded weights).
    mobilenet = writeMobileNetV2(models);
    addModel(repo, "mobilenet", { wasm: mobilenet.module, safetensors: mobilenet.model });

    addModel(repo, "digits", { wasm: digits.module, safetensors: digits.model });
    addModel(repo, "mlp", { wasm: join(models, "mlp.wasm") });
    addModel(repo, "mlp-int8", { wasm: join(models, "mlp-int8.wasm") });
    addModel(repo, "cnn", { wasm: join(models, "cnn.wasm"), safetensors: cnn });
    addModel(repo, "cnn-int8", { wasm: join(models, "cnn-int8.wasm") });
    server = await startServe(repo, dir, "--static", WEB);
    base = server.base;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
      ],
    });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** A fresh page on `path`; console errors and uncaught exceptions are collected. */
  async function open(path) {
    page = await browser.newPage({ viewport: { width: 820, height: 640 } });
    problems = [];
    page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
    page.on("pageerror", (e) => problems.push(`uncaught: ${e.message}`));
    await page.route("**/files/*", (route) => {
      const body = broken[new URL(route.request().url()).pathname.slice("/files/".length)];
      return body ? route.fulfill({ body, contentType: "application/octet-stream" }) : route.fallback();
    });
    await page.goto(base + path);
    await page.waitForFunction(() => window.kilnDemo?.loaded, null, { timeout: 20000 }).catch((e) => {
      throw new Error(`the page did not finish loading: ${e.message}\n${problems.join("\n")}`);
    });
    return page;
  }

  function assertNoProblems() {
    assert.deepEqual(problems, [], "console errors or uncaught exceptions on the page");
  }

  /** Waits until the page has predicted and the server has answered. */
  async function settled() {
    await page.waitForFunction(() => {
      const s = window.kilnDemo.state;
      return s.scores !== null && (s.server !== null || s.serverError !== null);
    });
    return page.evaluate(() => window.kilnDemo.state);
  }

  test("web/pkg is ≤ 150 KB (wasm + JS, with the signature check's verify.js), its CNN build web/pkg-cnn ≤ 180 KB, its recurrent build web/pkg-rnn ≤ 170 KB, its graph build web/pkg-graph ≤ 200 KB", () => {
    for (const [pkg, budget] of [["pkg", 150_000], ["pkg-cnn", 180_000], ["pkg-rnn", 170_000], ["pkg-graph", 200_000]]) {
      const wasm = statSync(join(WEB, pkg, "kiln_bg.wasm")).size;
      // Every file a page that verifies loads: kiln.js, load.js it imports,
      // verify.js (fetched by the first load with `{ publicKey }`). On
      // demand, printed and not counted: the Ed25519 fallback, ed25519.js
      // over noble/ (only where WebCrypto lacks Ed25519).
      const size = (files) => files.reduce((n, f) => n + statSync(join(WEB, pkg, f)).size, 0);
      const js = size(["kiln.js", "load.js"]);
      const verify = size(["verify.js"]);
      const fallback = size(["ed25519.js", "noble/ed25519.js"]);
      console.log(
        `browser: web/${pkg} kiln_bg.wasm ${wasm} B + JS ${js} B = ${wasm + js} B` +
          ` (+ verify.js ${verify} B with publicKey: ${wasm + js + verify} B; + Ed25519 fallback ${fallback} B on demand)`,
      );
      assert.ok(wasm + js + verify <= budget, `web/${pkg}: ${wasm + js + verify} bytes with verify.js`);
    }
  });

  test("a CNN: web/pkg refuses it naming web/pkg-cnn, which predicts it with native's bits", async () => {
    await open("/demo/");
    const rows = csvRows(digits.testCsv, 64);
    const want = nativeScores(join(models, "cnn.wasm"), rows, dir).map(bits);
    const flat = rows.flatMap((r) => Array.from(r));
    const got = await page.evaluate(async (flat) => {
      const lean = await import("/pkg/kiln.js");
      const refused = [];
      for (const url of ["/models/cnn/model.wasm", "/models/cnn/model.safetensors"]) {
        refused.push(await lean.Model.load(url).then(() => "loaded", (e) => e.message));
      }
      const cnn = await import("/pkg-cnn/kiln.js");
      await cnn.default();
      const out = [];
      for (const url of ["/models/cnn/model.wasm", "/models/cnn/model.safetensors"]) {
        const m = await cnn.Model.load(url);
        out.push(Array.from(m.predict(new Float32Array(flat))));
        m.free();
      }
      return { refused, out };
    }, flat);
    for (const message of got.refused) {
      assert.match(message, /^\/models\/cnn\/model\.(wasm|safetensors): layer \d+ \(conv2d\) is a convolution or pooling layer, which this build of the package \(web\/pkg, dense models\) leaves out; load the model with its CNN build, web\/pkg-cnn$/);
    }
    for (const out of got.out) {
      const scores = Array.from({ length: rows.length }, (_, i) => bits(out.slice(i * 10, (i + 1) * 10)));
      assert.deepEqual(scores, want);
    }
    assertNoProblems();
    await page.close();
  });

  test("a GRU and an LSTM: web/pkg and web/pkg-cnn refuse them naming web/pkg-rnn, which predicts them with the bits of kiln predict (wasmtime) and --native, and refuses int8 weights", async () => {
    await open("/demo/");
    const rows = csvRows(digits.testCsv, 64);
    const flat = rows.flatMap((r) => Array.from(r));
    for (const name of ["gru", "lstm"]) {
      const module = join(models, `${name}.wasm`);
      const want = nativeScores(module, rows, dir).map(bits);
      assert.deepEqual(predictScores(module, rows, dir).map(bits), want, `${name}: wasmtime vs native`);
      const urls = [`/models/${name}/model.wasm`, `/models/${name}/model.safetensors`];
      const got = await page.evaluate(async ([urls, flat]) => {
        const refused = [];
        for (const pkg of ["/pkg/kiln.js", "/pkg-cnn/kiln.js"]) {
          const p = await import(pkg);
          await p.default();
          for (const url of urls) refused.push(await p.Model.load(url).then(() => "loaded", (e) => e.message));
        }
        const rnn = await import("/pkg-rnn/kiln.js");
        await rnn.default();
        const out = [];
        for (const url of urls) {
          const m = await rnn.Model.load(url);
          out.push({ scores: Array.from(m.predict(new Float32Array(flat))), input: m.meta.input });
          m.free();
        }
        return { refused, out };
      }, [urls, flat]);
      const builds = ["web\\/pkg, dense models", "web\\/pkg-cnn, CNNs"];
      got.refused.forEach((message, i) => {
        const build = builds[Math.floor(i / urls.length)];
        assert.match(message, new RegExp(`^/models/${name}/model\\.(wasm|safetensors): layer 0 \\(${name}\\) is a recurrent layer, which this build of the package \\(${build}\\) leaves out; load the model with its recurrent build, web/pkg-rnn$`));
      });
      for (const { scores, input } of got.out) {
        assert.deepEqual(input, { name: "input", datatype: "FP32", shape: [8, 8] });
        const per = Array.from({ length: rows.length }, (_, i) => bits(scores.slice(i * 10, (i + 1) * 10)));
        assert.deepEqual(per, want, `${name}: web/pkg-rnn in V8 vs kiln predict --native, all ${rows.length} held-out rows`);
      }
    }
    const int8 = await page.evaluate(async () => {
      const rnn = await import("/pkg-rnn/kiln.js");
      const refused = [];
      for (const url of ["/models/gru-int8/model.wasm", "/models/gru-int8/model.safetensors"]) {
        refused.push(await rnn.Model.load(url).then(() => "loaded", (e) => e.message));
      }
      return refused;
    });
    for (const message of int8) {
      assert.match(message, /^\/models\/gru-int8\/model\.(wasm|safetensors): layer 0 \(gru\) is a recurrent layer with int8 weights, which no build of the package holds \(size\); run the model module through its raw ABI/);
    }
    assertNoProblems();
    await page.close();
  });

  test("MobileNetV2 (a graph): the other builds refuse it naming web/pkg-graph, which predicts it with the bits of native, wasmtime and V8 (Node)", async () => {
    await open("/demo/");
    const rows = randomRows(3, mobilenet.width, 11);
    const want = nativeScores(mobilenet.module, rows, dir).map(bits);
    assert.deepEqual(predictScores(mobilenet.module, rows, dir).map(bits), want, "wasmtime vs native");
    assert.deepEqual((await v8Scores(mobilenet.module, rows)).map(bits), want, "V8 (Node, raw ABI) vs native");
    const flat = rows.flatMap((r) => Array.from(r));
    const got = await page.evaluate(async (flat) => {
      const [wasm, file] = ["/models/mobilenet/model.wasm", "/models/mobilenet/model.safetensors"];
      const refused = [];
      for (const pkg of ["pkg", "pkg-cnn", "pkg-rnn", "pkg-graph"]) {
        const p = await import(`/${pkg}/kiln.js`);
        await p.default();
        const urls = pkg === "pkg-graph" ? [file] : [wasm, file];
        for (const url of urls) refused.push([pkg, url, await p.Model.load(url).then(() => "loaded", (e) => e.message)]);
      }
      const graph = await import("/pkg-graph/kiln.js");
      const m = await graph.Model.load(wasm);
      const out = { scores: Array.from(m.predict(new Float32Array(flat))), input: m.meta.input };
      m.free();
      return { refused, out };
    }, flat);
    const builds = { pkg: "web\\/pkg, dense models", "pkg-cnn": "web\\/pkg-cnn, CNNs", "pkg-rnn": "web\\/pkg-rnn, recurrent models" };
    assert.equal(got.refused.length, 7);
    for (const [pkg, url, message] of got.refused) {
      if (url.endsWith(".wasm")) {
        assert.match(message, new RegExp(`^${url}: the module holds a graph model, which this build of the package \\(${builds[pkg]}\\) leaves out; load it with its graph build, web/pkg-graph$`));
      } else {
        assert.match(message, new RegExp(`^${url}: a graph model \\(format 2\\) is read from its compiled module in the browser: .*web/pkg-graph$`));
      }
    }
    assert.deepEqual(got.out.input, { name: "input", datatype: "FP32", shape: [3, 96, 96] });
    const per = Array.from({ length: rows.length }, (_, i) => bits(got.out.scores.slice(i * 10, (i + 1) * 10)));
    assert.deepEqual(per, want, "web/pkg-graph in Chromium vs kiln predict --native");
    assertNoProblems();
    await page.close();
  });

  test("drawn strokes: page scores == server scores == kiln predict --native, bit for bit", async () => {
    await open("/");
    assert.match(page.url(), /\/demo\/$/);
    const box = await page.locator("#pad").boundingBox();
    const at = (x, y) => [box.x + x * box.width, box.y + y * box.height];
    // A "7": a bar across the top, then a stroke down to the lower left.
    const strokes = [
      [[0.25, 0.2], [0.75, 0.2]],
      [[0.75, 0.2], [0.4, 0.85]],
    ];
    for (const [from, to] of strokes) {
      await page.mouse.move(...at(...from));
      await page.mouse.down();
      for (let i = 1; i <= 12; i++) {
        const t = i / 12;
        await page.mouse.move(...at(from[0] + (to[0] - from[0]) * t, from[1] + (to[1] - from[1]) * t));
      }
      await page.mouse.up();
    }
    const s = await settled();
    assert.equal(s.input.length, 64);
    assert.ok(s.input.some((v) => v > 0), "the drawing produced an empty input");
    assert.ok(s.input.every((v) => Number.isInteger(v) && v >= 0 && v <= 16), "inputs are UCI-style counts 0..16");
    assert.equal(s.serverError, null);
    assert.deepEqual(bits(s.scores), bits(s.server), "page vs the server's answer to the page");
    // The same pixels POSTed to kiln serve from here, not through the page.
    const meta = await (await fetch(`${base}/v2/models/digits`)).json();
    const res = await fetch(`${base}/v2/models/digits/infer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ inputs: [{ name: meta.inputs[0].name, shape: [1, 64], datatype: "FP32", data: s.input }] }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    const served = (await res.json()).outputs[0];
    assert.deepEqual(served.shape, [1, 10]);
    assert.deepEqual(bits(s.scores), bits(served.data), "page vs kiln serve /infer");
    const [native] = nativeScores(digits.module, [s.input], dir);
    assert.deepEqual(bits(s.scores), bits(native), "page vs kiln predict --native");
    assert.match(await page.locator("#server").textContent(), /same bits as this page/);
    assert.equal(await page.locator("#top li").count(), 3);
    const top = await page.locator("#top li .label").first().textContent();
    console.log(`browser: drew a 7, the page says ${top}; input ${JSON.stringify(s.input)}`);
    assert.match(await page.locator("#time").textContent(), /^[0-9.]+ µs$/);

    mkdirSync(join(SCREENSHOT, ".."), { recursive: true });
    await page.screenshot({ path: SCREENSHOT });
    console.log(`browser: screenshot saved to ${SCREENSHOT}`);
    assertNoProblems();
    await page.close();
  });

  test("random test digit and every held-out row: module and model file both == native", async () => {
    await open("/demo/");
    await page.click("#random");
    const s = await settled();
    const shipped = csvRows(join(WEB, "demo/test-digits.csv"), 64);
    assert.ok(shipped.some((r) => r.every((v, i) => v === s.input[i])), "random digit is a row of test-digits.csv");
    const rows = csvRows(digits.testCsv, 64);
    assert.deepEqual(bits(s.scores), bits(s.server));
    assert.match(await page.locator("#truth").textContent(), /true label/);

    const want = nativeScores(digits.module, rows, dir).map(bits);
    const flat = rows.flatMap((r) => Array.from(r));
    for (const url of ["/models/digits/model.wasm", "/models/digits/model.safetensors"]) {
      const got = await page.evaluate(
        async ([url, flat]) => {
          const { Model } = await import("/pkg/kiln.js");
          const m = await Model.load(url);
          const out = Array.from(m.predict(new Float32Array(flat)));
          const meta = m.meta;
          const top = m.classify(new Float32Array(flat.slice(0, 64)), 3);
          const proto = [Object.getPrototypeOf(meta) === Object.prototype, Array.isArray(top), m.constructor.name];
          m.free();
          return { out, meta, top, proto };
        },
        [url, flat],
      );
      const module = url.endsWith(".wasm");
      // `meta` and `classify` are plain JSON-like objects, fields in order.
      assert.deepEqual(got.proto, [true, true, "Model"]);
      assert.deepEqual(Object.keys(got.meta), [
        "name", "version", "task", "input", "output", "features", "target", "labels",
        ...(module ? ["abi_version", "model_sha256", "kiln_version"] : []), "source",
      ]);
      assert.equal(got.meta.name, "digits");
      assert.equal(got.meta.task, "classification");
      assert.deepEqual(got.meta.input, { name: "input", datatype: "FP32", shape: [64] });
      assert.deepEqual(got.meta.output, { name: "scores", datatype: "FP32", shape: [10] });
      assert.deepEqual(got.meta.labels, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
      assert.equal(got.meta.source, module ? "module" : "model-file");
      if (module) {
        assert.equal(got.meta.abi_version, 1);
        assert.match(got.meta.model_sha256, /^[0-9a-f]{64}$/);
      }
      const scores = Array.from({ length: rows.length }, (_, i) => bits(got.out.slice(i * 10, (i + 1) * 10)));
      assert.deepEqual(scores, want, `${url}: all ${rows.length} held-out rows`);
      // classify: the top 3 of row 0, best first, with predict's exact scores.
      const row0 = got.out.slice(0, 10);
      const order = [...row0.keys()].sort((a, b) => row0[b] - row0[a] || a - b).slice(0, 3);
      assert.deepEqual(got.top, order.map((i) => ({ label: String(i), index: i, score: row0[i] })));
    }
    assertNoProblems();
    await page.close();
  });

  test("corrupt model files: the error is shown on the page, no exception", async () => {
    for (const [file, message] of [
      ["truncated.wasm", /truncated\.wasm: not a valid WebAssembly module: unexpected end/],
      ["garbage.safetensors", /garbage\.safetensors: not a valid safetensors file/],
      ["no-graph.safetensors", /no kiln graph in the safetensors metadata/],
      ["/models/missing/model.wasm", /\/models\/missing\/model\.wasm: HTTP 404/],
      // Served by kiln serve (which runs it), refused by the package.
      ["/models/cnn-int8/model.wasm", /\/models\/cnn-int8\/model\.wasm: .*int8 convolution is not in this kernel build \(the browser package leaves it out\); run the model module/],
    ]) {
      problems = [];
      await open(`/demo/?model=${file.startsWith("/") ? file : `/files/${file}`}`);
      const error = page.locator("#error");
      assert.ok(await error.isVisible(), `${file}: error element visible`);
      assert.match(await error.textContent(), message, file);
      assert.equal(await page.locator("#status").textContent(), "no model loaded");
      // A 404 is logged by Chromium itself as a failed resource load.
      const expected = file.includes("missing") ? problems.filter((p) => !/404/.test(p)) : problems;
      assert.deepEqual(expected, [], `${file}: console errors or uncaught exceptions`);
      await page.close();
    }
    // The API rejects with a JS Error carrying the message.
    await open("/demo/");
    const thrown = await page.evaluate(async () => {
      const { Model } = await import("/pkg/kiln.js");
      const errors = [];
      for (const bad of [new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 11, 200]), "/files/garbage.safetensors", 42]) {
        try {
          await Model.load(bad);
          errors.push("no error");
        } catch (e) {
          errors.push(`${e instanceof Error}: ${e.message}`);
        }
      }
      const m = await Model.load("/models/digits/model.wasm");
      try {
        m.predict(new Float32Array(63));
      } catch (e) {
        errors.push(`${e instanceof Error}: ${e.message}`);
      }
      m.free();
      return errors;
    });
    assert.match(thrown[0], /^true: model bytes: not a valid WebAssembly module/);
    assert.match(thrown[1], /^true: \/files\/garbage\.safetensors: not a valid safetensors file/);
    assert.match(thrown[2], /^true: Model\.load expects a URL/);
    assert.match(thrown[3], /^true: input has 63 values/);
    assertNoProblems();
    await page.close();
  });

  test("predictions per second in Chromium, MLP 784-256-128-10, int8 and f32; int8 bits == native", async () => {
    await open("/demo/");
    const rows = randomRows(4, 784, 9);
    const r = await page.evaluate(async (rows) => {
      const { Model } = await import("/pkg/kiln.js");
      const out = {};
      // Interleaved runs of both models in one page: a ratio from one process.
      const models = { int8: await Model.load("/models/mlp-int8/model.wasm"), f32: await Model.load("/models/mlp/model.wasm") };
      const x = new Float32Array(784).map((_, i) => (i % 17) / 17);
      for (const m of Object.values(models)) for (let i = 0; i < 200; i++) m.predict(x);
      const rates = { int8: [], f32: [] };
      for (let run = 0; run < 5; run++) {
        for (const [name, m] of Object.entries(models)) {
          let n = 0;
          const t0 = performance.now();
          while (performance.now() - t0 < 200) {
            m.predict(x);
            n++;
          }
          rates[name].push((n * 1000) / (performance.now() - t0));
        }
      }
      for (const [name, v] of Object.entries(rates)) {
        v.sort((a, b) => a - b);
        out[name] = { median: v[2], rates: v };
      }
      out.int8Scores = Array.from(models.int8.predict(new Float32Array(rows.flat())));
      for (const m of Object.values(models)) m.free();
      return out;
    }, rows.map((r) => Array.from(r)));
    for (const name of ["int8", "f32"]) {
      const { median, rates } = r[name];
      console.log(
        `browser: MLP 784-256-128-10 ${name}, batch 1, in Chromium: median ${median.toFixed(0)} predictions/s ` +
          `(${(1e6 / median).toFixed(1)} µs each; 5 runs of 200 ms: ${rates.map((v) => v.toFixed(0)).join(", ")})`,
      );
      assert.ok(median > 0);
    }
    console.log(`browser: int8 / f32 throughput ratio in the same page: ${(r.int8.median / r.f32.median).toFixed(2)}`);
    const want = nativeScores(join(models, "mlp-int8.wasm"), rows, dir);
    const got = Array.from({ length: rows.length }, (_, i) => bits(r.int8Scores.slice(i * 10, (i + 1) * 10)));
    assert.deepEqual(got, want.map(bits), "int8 module in V8 vs kiln predict --native");
    assertNoProblems();
    await page.close();
  });
});

