// Calls a kiln model module through its raw ABI v1 (docs/abi.md): no glue,
// no dependencies, the same in Node, browsers and edge workers. kiln's edge
// worker, its Node benchmarks and its tests all run modules through this file.

/** A call the module refused: `code` is kiln_run's (docs/abi.md), or 0 when kiln_input gave no buffer. */
export class KilnError extends Error {
  constructor(message, code) {
    super(message);
    this.name = "KilnError";
    this.code = code;
  }
}

/** One instance of a model module. Its buffers are reused by every call. */
export class KilnModule {
  /** Compiles and instantiates a module's bytes (a module imports nothing). */
  static async load(bytes) {
    const { instance } = await WebAssembly.instantiate(bytes, {});
    return new KilnModule(instance);
  }

  /** Wraps an instance: `new WebAssembly.Instance(module, {})` where compiling bytes is refused. */
  constructor(instance) {
    const k = instance.exports;
    if (k.kiln_abi_version() !== 1) throw new Error("not a kiln ABI v1 module");
    this.exports = k;
    this.inputLen = k.kiln_input_len(); // f32 values per row
    this.outputLen = k.kiln_output_len();
    if (this.inputLen < 0 || this.outputLen < 0) throw new Error("the module embeds no valid model");
  }

  /**
   * Runs `batch` rows (`batch × inputLen` values, flat) and returns the
   * `batch × outputLen` scores as a view into the module's memory, valid
   * until the next call.
   */
  run(rows, batch) {
    const k = this.exports;
    const ptr = k.kiln_input(batch); // a guest-owned buffer for the whole batch
    if (ptr === 0) throw new KilnError(`the module could not allocate the input for ${batch} rows`, 0);
    // kiln_input may have grown the memory: take its buffer only now.
    new Float32Array(k.memory.buffer, ptr, batch * this.inputLen).set(rows);
    const code = k.kiln_run(batch);
    if (code !== 0) throw new KilnError(`kiln_run failed with code ${code}`, code);
    return new Float32Array(k.memory.buffer, k.kiln_output(), batch * this.outputLen);
  }

  /** The scores of `batch` rows, copied out of the module's memory. */
  predict(rows, batch) {
    return this.run(rows, batch).slice();
  }
}
