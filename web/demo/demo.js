// The kiln demo page: draw a digit, the page predicts it with the kiln
// browser package (web/pkg) and asks the server for the same pixels.
//
// No bundler: an ES module importing ../pkg/kiln.js. Query parameters:
//   ?model=URL   the model to load (default /models/digits/model.wasm, where
//                `kiln serve` serves the digits module; a .safetensors model
//                file works too) for the f32/int8 selector's f32 choice
//   ?model-int8=URL  the int8 choice (default /models/digits-int8/model.wasm)
//   ?test=URL    rows for "random test digit" (a CSV as written by `kiln
//                train --test-out`; default test-digits.csv beside this page:
//                100 UCI digits the seed-1 model did not train on)
// scripts/demo.sh serves both the f32 and the int8 module.
//
// window.kilnDemo exposes the last prediction ({input, scores, server}) and
// a `loaded` flag for the end-to-end tests in tests/browser.

import init, { Model, randomIndex } from "../pkg/kiln.js";

const params = new URLSearchParams(location.search);
const VARIANTS = {
  f32: params.get("model") ?? "/models/digits/model.wasm",
  int8: params.get("model-int8") ?? "/models/digits-int8/model.wasm",
};
const TEST_URL = params.get("test") ?? "test-digits.csv";

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ctx = pad.getContext("2d", { willReadFrequently: true });
const preview = $("preview").getContext("2d");

/** State shared with the tests. */
const state = { model: null, input: null, scores: null, server: null, serverError: null, updates: 0 };
/** Set once the first model load has finished (or failed). */
window.kilnDemo = { state, loaded: false };

// ---- drawing (pointer events cover mouse, pen and touch) ----
const STROKE = 22;
let drawing = false;
let last = null;

function resetPad() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  $("truth").textContent = "";
}

function point(e) {
  const r = pad.getBoundingClientRect();
  return [((e.clientX - r.left) * pad.width) / r.width, ((e.clientY - r.top) * pad.height) / r.height];
}

pad.addEventListener("pointerdown", (e) => {
  drawing = true;
  pad.setPointerCapture(e.pointerId);
  last = point(e);
  stroke(last, last);
  $("truth").textContent = "";
});
pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const p = point(e);
  stroke(last, p);
  last = p;
});
for (const end of ["pointerup", "pointercancel"]) {
  pad.addEventListener(end, () => {
    drawing = false;
    scheduleUpdate();
  });
}

function stroke(a, b) {
  ctx.strokeStyle = "#000";
  ctx.lineWidth = STROKE;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(a[0], a[1]);
  ctx.lineTo(b[0], b[1]);
  ctx.stroke();
  scheduleUpdate();
}

// ---- the drawing → the UCI digits input ----
// UCI optdigits: the digit's bitmap is normalised to 32×32, then the "on"
// pixels of each non-overlapping 4×4 block are counted: 8×8 values, 0..16.
const small = new OffscreenCanvas(32, 32);
const sctx = small.getContext("2d", { willReadFrequently: true });

function pixels() {
  const { data } = ctx.getImageData(0, 0, pad.width, pad.height);
  let [x0, y0, x1, y1] = [pad.width, pad.height, -1, -1];
  for (let y = 0; y < pad.height; y++) {
    for (let x = 0; x < pad.width; x++) {
      if (data[(y * pad.width + x) * 4] < 128) {
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
        y0 = Math.min(y0, y);
        y1 = Math.max(y1, y);
      }
    }
  }
  const out = new Float32Array(64);
  if (x1 < 0) return out;
  // Fit the ink's bounding box into 32×32 keeping its aspect, centred.
  const [w, h] = [x1 - x0 + 1, y1 - y0 + 1];
  const s = 32 / Math.max(w, h);
  sctx.fillStyle = "#fff";
  sctx.fillRect(0, 0, 32, 32);
  sctx.drawImage(pad, x0, y0, w, h, (32 - w * s) / 2, (32 - h * s) / 2, w * s, h * s);
  const bmp = sctx.getImageData(0, 0, 32, 32).data;
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x++) {
      if (bmp[(y * 32 + x) * 4] < 128) out[(y >> 2) * 8 + (x >> 2)] += 1;
    }
  }
  return out;
}

function showPreview(input) {
  const img = preview.createImageData(8, 8);
  for (let i = 0; i < 64; i++) {
    const v = 255 - Math.round((input[i] / 16) * 255);
    img.data.set([v, v, v, 255], i * 4);
  }
  const tmp = new OffscreenCanvas(8, 8);
  tmp.getContext("2d").putImageData(img, 0, 0);
  preview.imageSmoothingEnabled = false;
  preview.drawImage(tmp, 0, 0, 64, 64);
}

// ---- prediction ----
let pending = false;
function scheduleUpdate() {
  if (pending || !state.model) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    update();
  });
}

/** Predicts `input` (default: the drawing), shows it, asks the server. */
function update(input = pixels()) {
  const model = state.model;
  if (!model) return;
  showPreview(input);
  if (input.every((v) => v === 0)) {
    // A blank pad: nothing to classify yet.
    state.input = state.scores = state.server = null;
    serverSeq++;
    $("top").innerHTML = `<li class="hint">draw a digit 0–9 in the box</li>`;
    $("server").textContent = "–";
    return;
  }
  state.input = Array.from(input);
  const scores = model.predict(input);
  state.scores = Array.from(scores);
  state.updates++;
  showTop(model.classify(input, 3));
  $("time").textContent = `${timePredict(model, input).toFixed(1)} µs`;
  askServer(input, scores);
}

/** µs per prediction, averaged over calls repeated for at least 2 ms so
 * that browsers' coarse clocks do not dominate. */
function timePredict(model, input) {
  let n = 0;
  const t0 = performance.now();
  let t;
  do {
    model.predict(input);
    n++;
    t = performance.now();
  } while (t - t0 < 2);
  return ((t - t0) * 1000) / n;
}

function showTop(top) {
  const list = $("top");
  list.replaceChildren(
    ...top.map(({ label, score }) => {
      const li = document.createElement("li");
      li.innerHTML = `<span class="label"></span><span class="bar"><div></div></span><span class="pct"></span>`;
      li.querySelector(".label").textContent = label;
      li.querySelector(".bar div").style.width = `${(score * 100).toFixed(1)}%`;
      li.querySelector(".pct").textContent = `${(score * 100).toFixed(1)}%`;
      return li;
    }),
  );
}

// ---- the server's answer for the same pixels ----
let serverSeq = 0;
async function askServer(input, scores) {
  const seq = ++serverSeq;
  // The last answer was for other pixels: until this one arrives there is
  // no server answer for what the page shows (tests wait on this).
  state.server = state.serverError = null;
  const el = $("server");
  const meta = state.model.meta;
  const body = {
    inputs: [{ name: meta.input.name, datatype: "FP32", shape: [1, input.length], data: Array.from(input) }],
  };
  try {
    const res = await fetch(`/v2/models/${encodeURIComponent(meta.name)}/infer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (seq !== serverSeq) return;
    if (!res.ok) {
      const why = await res.json().then((j) => j.error, () => res.statusText);
      throw new Error(`HTTP ${res.status}: ${why}`);
    }
    const out = (await res.json()).outputs[0].data.map(Math.fround);
    if (seq !== serverSeq) return;
    state.server = out;
    state.serverError = null;
    const best = out.indexOf(Math.max(...out));
    const label = meta.labels[best] ?? String(best);
    const same = out.length === scores.length && out.every((v, i) => Object.is(v, scores[i]));
    el.innerHTML = `<b></b> (${(out[best] * 100).toFixed(1)}%) · <span></span>`;
    el.querySelector("b").textContent = label;
    const tag = el.querySelector("span");
    tag.className = same ? "match" : "mismatch";
    tag.textContent = same ? "same bits as this page ✓" : "scores differ from this page ✗";
  } catch (e) {
    if (seq !== serverSeq) return;
    state.server = null;
    state.serverError = String(e.message ?? e);
    el.textContent = `unavailable (${state.serverError})`;
  }
}

// ---- random test digit ----
let testRows = null;
async function randomDigit() {
  try {
    if (!testRows) {
      const res = await fetch(TEST_URL);
      if (!res.ok) throw new Error(`fetching ${TEST_URL}: HTTP ${res.status}`);
      const lines = (await res.text()).trim().split("\n").slice(1);
      testRows = lines.map((l) => l.split(",").map(Number));
    }
    const row = testRows[randomIndex(testRows.length)];
    const input = Float32Array.from(row.slice(0, 64));
    // Paint the 8×8 row as blocks so the pad shows what is predicted.
    resetPad();
    const cell = pad.width / 8;
    for (let i = 0; i < 64; i++) {
      const v = 255 - Math.round((input[i] / 16) * 255);
      ctx.fillStyle = `rgb(${v},${v},${v})`;
      ctx.fillRect((i % 8) * cell, Math.floor(i / 8) * cell, cell, cell);
    }
    $("truth").textContent = row.length > 64 ? `test row, true label ${row[64]}` : "test row";
    update(input);
  } catch (e) {
    showError(e);
  }
}

function showError(e) {
  const el = $("error");
  el.textContent = String(e?.message ?? e);
  el.hidden = false;
}

// ---- start ----
async function load(variant) {
  $("status").textContent = `loading ${VARIANTS[variant]}…`;
  $("error").hidden = true;
  state.model?.free();
  state.model = null;
  try {
    const model = await Model.load(new URL(VARIANTS[variant], location.href).href);
    state.model = model;
    const m = model.meta;
    $("status").textContent = `${m.name} ${m.version} · ${m.input.shape.join("×")} → ${m.output.shape} · from a ${m.source}`;
    $("meta").textContent = m.model_sha256 ? `model sha256 ${m.model_sha256.slice(0, 16)}…` : "";
    update();
  } catch (e) {
    $("status").textContent = "no model loaded";
    showError(e);
  }
}

$("clear").addEventListener("click", () => {
  resetPad();
  update();
});
$("random").addEventListener("click", randomDigit);
$("variant").addEventListener("change", (e) => load(e.target.value));

resetPad();
await init();
await load("f32");
window.kilnDemo.loaded = true;
