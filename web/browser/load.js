// The browser package's `Model.load(source, options)` (src/lib.rs imports
// this file as ./load.js, and it imports kiln.js back; scripts/web.sh
// minifies it next to kiln.js): reads the bytes of a URL (string, URL, or
// anything with a string `href`) or of an ArrayBuffer / typed array, with
// `{ publicKey }` verifies the module's signature first (web/trust/
// verify.js, imported only then: a page that verifies nothing does not
// fetch it), then hands the bytes to the wasm side. Errors name the URL,
// as the host's do.

import { Model } from "./kiln.js";

/** `Model.load(source, options)`: resolves to the Model. */
export async function modelLoad(source, options) {
  const [bytes, name] = await modelBytes(source, options);
  return Model.fromNamedBytes(bytes, name);
}

/** Resolves to `[bytes, name]`: a Uint8Array and the URL (or "model bytes"). */
async function modelBytes(source, options) {
  const url = typeof source === "string" ? source : typeof source?.href === "string" ? source.href : null;
  let bytes;
  if (url !== null) {
    let response;
    try {
      response = await fetch(url);
      if (response.ok) bytes = new Uint8Array(await response.arrayBuffer());
    } catch (e) {
      throw new Error(`fetching ${url}: ${e?.message ?? "network error"}`);
    }
    if (!response.ok) throw new Error(`fetching ${url}: HTTP ${response.status} ${response.statusText}`);
  } else if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
    bytes = new Uint8Array(source.buffer ?? source, source.byteOffset, source.byteLength);
  } else {
    throw new Error("Model.load expects a URL (string or URL) or the model's bytes (ArrayBuffer or typed array)");
  }
  const name = url ?? "model bytes";
  if (options?.publicKey != null) {
    const { verifyModule } = await import("./verify.js");
    await verifyModule(bytes, options.publicKey).catch((e) => {
      throw new Error(`${name}: ${e.message}`);
    });
  }
  return [bytes, name];
}
