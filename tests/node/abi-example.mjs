// Runs a kiln model module with no glue at all: node abi-example.mjs MODEL.wasm ROWS.json
// ROWS.json is a JSON array of rows; prints one JSON array of scores per row.
import { readFile } from "node:fs/promises";

const bytes = await readFile(process.argv[2]);
const rows = JSON.parse(await readFile(process.argv[3], "utf8"));
const { instance } = await WebAssembly.instantiate(bytes, {}); // imports nothing
const k = instance.exports;
if (k.kiln_abi_version() !== 1) throw new Error("not a kiln ABI v1 module");
const inLen = k.kiln_input_len(), outLen = k.kiln_output_len();
const ptr = k.kiln_input(rows.length); // guest-owned buffer for the whole batch
if (ptr === 0) throw new Error("the module could not allocate the input");
new Float32Array(k.memory.buffer, ptr, rows.length * inLen).set(rows.flat());
const code = k.kiln_run(rows.length);
if (code !== 0) throw new Error(`kiln_run failed with code ${code}`);
const out = new Float32Array(k.memory.buffer, k.kiln_output(), rows.length * outLen);
for (let r = 0; r < rows.length; r++) {
  console.log(JSON.stringify(Array.from(out.subarray(r * outLen, (r + 1) * outLen))));
}
