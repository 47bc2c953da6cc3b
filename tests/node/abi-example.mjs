// Runs a kiln model module: node abi-example.mjs MODEL.wasm ROWS.json
// ROWS.json is a JSON array of rows (null: a missing value, NaN); prints one
// JSON array of scores per row.
import { readFile } from "node:fs/promises";
import { KilnModule } from "../../web/abi/abi.js";

const model = await KilnModule.load(await readFile(process.argv[2]));
const rows = JSON.parse(await readFile(process.argv[3], "utf8"));
const scores = model.run(rows.flat().map((v) => v ?? NaN), rows.length);
const n = model.outputLen;
for (let r = 0; r < rows.length; r++) {
  console.log(JSON.stringify(Array.from(scores.subarray(r * n, (r + 1) * n))));
}
