//! The raw ABI v1 exports of a model module (see `docs/abi.md`).
//!
//! Compiled only for `wasm32` with feature `module`. The model blob sits in
//! linear memory at the first 16-byte boundary at or after `__heap_base`,
//! where `kiln build` places it in a data segment (growing the initial memory
//! to hold it). The allocator (talc) takes new memory only through
//! `memory.grow`, so it never touches that region.
//!
//! A module instance is single-threaded; its state lives in two plain cells.

// The exports are reached through the wasm export table, not Rust paths.
#![allow(unreachable_pub)]

use core::cell::UnsafeCell;

use crate::{Model, Scratch, blob};

/// talc, not Rust's default wasm allocator (dlmalloc): ~8 KB less code, and
/// it too takes memory only through `memory.grow` (one heap, extended in
/// place while the grown pages are contiguous). Allocation is off the hot
/// path: the model is decoded once and [`Scratch`] buffers only ever grow.
#[global_allocator]
static ALLOC: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

unsafe extern "C" {
    /// Set by the linker: the first byte past the module's static data.
    static __heap_base: u8;
}

/// `kiln_run` codes beyond [`crate::RunError::code`]: no valid model.
const NO_MODEL: i32 = -1;

/// A static touched only by this module's exports.
struct Global<T>(UnsafeCell<T>);

// SAFETY: wasm32 without the threads proposal runs one thread per instance.
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    #[allow(clippy::mut_from_ref)]
    fn get(&'static self) -> &'static mut T {
        // SAFETY: single-threaded, and each export takes each static's
        // reference at most once, so no two live references alias.
        unsafe { &mut *self.0.get() }
    }
}

/// The decoded model, decoded on first use; `Some(None)` once the embedded
/// blob turned out missing or invalid. The [`crate::DecodeError`] itself is
/// dropped at once: the ABI reports only [`NO_MODEL`] (the host decodes the
/// same blob natively when it needs the message), and keeping it in this
/// static kept the code that fills in its fields (~560 B of wasm).
static MODEL: Global<Option<Option<Model<'static>>>> = Global(UnsafeCell::new(None));
/// Batch buffers, and where the last successful run left its output.
static RUN: Global<(Scratch, usize)> = Global(UnsafeCell::new((Scratch::new(), 0)));

/// The embedded blob, if a well-formed header lies at the aligned heap base
/// and the declared length fits in memory.
fn embedded_blob() -> Option<&'static [u8]> {
    let base = core::ptr::addr_of!(__heap_base) as usize;
    let start = base.next_multiple_of(blob::ALIGN);
    let memory_end = core::arch::wasm32::memory_size(0) * 65536;
    let header_end = start.checked_add(blob::HEADER_LEN)?;
    if header_end > memory_end {
        return None;
    }
    // SAFETY: [start, header_end) lies inside linear memory (checked above),
    // which is always readable.
    let header = unsafe { core::slice::from_raw_parts(start as *const u8, blob::HEADER_LEN) };
    let len = blob::declared_len(header).ok()?;
    if start.checked_add(len)? > memory_end {
        return None;
    }
    // SAFETY: [start, start + len) lies inside linear memory, and nothing
    // writes to it: it is below the initial memory size the allocator skips.
    Some(unsafe { core::slice::from_raw_parts(start as *const u8, len) })
}

/// The embedded model, decoded on first use. Its structure is checked
/// (what the kernels' memory safety rests on), its weights are not scanned
/// for NaN and infinity: that scan touched every weight page in every fresh
/// instance, and hosts scan once when they load the module
/// ([`blob::decode_unscanned`]).
fn model() -> Option<&'static Model<'static>> {
    MODEL
        .get()
        .get_or_insert_with(|| embedded_blob().and_then(|b| blob::decode_unscanned(b).ok()))
        .as_ref()
}

#[unsafe(no_mangle)]
pub extern "C" fn kiln_abi_version() -> i32 {
    crate::ABI_VERSION
}

#[unsafe(no_mangle)]
pub extern "C" fn kiln_input_len() -> i32 {
    model().map_or(NO_MODEL, |m| m.input_len() as i32)
}

#[unsafe(no_mangle)]
pub extern "C" fn kiln_output_len() -> i32 {
    model().map_or(NO_MODEL, |m| m.output_len() as i32)
}

#[unsafe(no_mangle)]
pub extern "C" fn kiln_input(batch: i32) -> i32 {
    let Some(m) = model() else { return 0 };
    let Ok(batch) = usize::try_from(batch) else {
        return 0;
    };
    match RUN.get().0.input(m, batch) {
        Ok(buf) => buf.as_mut_ptr() as i32,
        Err(_) => 0,
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn kiln_run(batch: i32) -> i32 {
    let Some(m) = model() else { return NO_MODEL };
    let Ok(batch) = usize::try_from(batch) else {
        return crate::RunError::BadBatch.code();
    };
    let (scratch, output) = RUN.get();
    match m.run(batch, scratch) {
        Ok(out) => {
            *output = out.as_ptr() as usize;
            0
        }
        Err(e) => e.code(),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn kiln_output() -> i32 {
    RUN.get().1 as i32
}

#[cfg(feature = "kernel-tests")]
mod kernel_tests {
    //! Exports that run one dispatched kernel (SIMD128 in a `+simd128`
    //! build) on host-written buffers, for the host's bit-exactness tests.
    use alloc::vec::Vec;
    use core::slice;

    use crate::kernels;

    /// Allocates `n` f32 (leaked; a test instance is short-lived).
    #[unsafe(no_mangle)]
    pub extern "C" fn kiln_test_alloc(n: i32) -> i32 {
        let v: Vec<f32> = alloc::vec![0.0; n.max(0) as usize];
        v.leak().as_mut_ptr() as i32
    }

    fn buf(ptr: i32, len: i32) -> &'static mut [f32] {
        // SAFETY: the host passes pointers from kiln_test_alloc with their
        // lengths; this build exists only for tests.
        unsafe { slice::from_raw_parts_mut(ptr as *mut f32, len as usize) }
    }

    #[unsafe(no_mangle)]
    pub extern "C" fn kiln_test_dense(
        x: i32,
        w: i32,
        b: i32,
        batch: i32,
        inputs: i32,
        outputs: i32,
        y: i32,
    ) {
        kernels::dense(
            buf(x, batch * inputs),
            buf(w, inputs * outputs),
            buf(b, outputs),
            inputs as usize,
            outputs as usize,
            buf(y, batch * outputs),
        );
    }

    #[unsafe(no_mangle)]
    pub extern "C" fn kiln_test_relu(x: i32, n: i32) {
        kernels::relu(buf(x, n));
    }

    #[unsafe(no_mangle)]
    pub extern "C" fn kiln_test_standardize(x: i32, mean: i32, inv: i32, batch: i32, n: i32) {
        kernels::standardize(buf(x, batch * n), buf(mean, n), buf(inv, n));
    }

    /// Reads `n` geometry values that the host wrote as `i32`s.
    fn dims<const N: usize>(ptr: i32) -> [usize; N] {
        let raw = buf(ptr, N as i32);
        core::array::from_fn(|i| raw[i].to_bits() as usize)
    }

    /// [`kernels::conv2d`]; `geom` points at 8 `i32`s: in_c, in_h, in_w,
    /// out_c, kh, kw, stride, pad.
    #[unsafe(no_mangle)]
    pub extern "C" fn kiln_test_conv2d(x: i32, w: i32, b: i32, y: i32, batch: i32, geom: i32) {
        let [in_c, in_h, in_w, out_c, kh, kw, stride, pad] = dims(geom);
        let g = crate::ConvGeom {
            in_c,
            in_h,
            in_w,
            out_c,
            kh,
            kw,
            stride,
            pad,
        };
        let (Some(()), Some(inl), Some(outl), Some(wl)) =
            (g.check(), g.input_len(), g.output_len(), g.weight_len())
        else {
            return;
        };
        let rows = batch as usize;
        kernels::conv2d(
            buf(x, (rows * inl) as i32),
            buf(w, wl as i32),
            buf(b, out_c as i32),
            &g,
            buf(y, (rows * outl) as i32),
        );
    }

    /// The pooling exports' kind (`max` 1: max, 0: average), geometry (5
    /// `i32`s at `geom`: c, h, w, k, stride) and input values per row;
    /// `None` for a geometry [`crate::PoolGeom::check`] refuses.
    fn pool_args(max: i32, geom: i32) -> Option<(crate::PoolKind, crate::PoolGeom, usize)> {
        let [c, h, w, k, stride] = dims(geom);
        let g = crate::PoolGeom { c, h, w, k, stride };
        g.check()?;
        let kind = if max != 0 {
            crate::PoolKind::Max
        } else {
            crate::PoolKind::Avg
        };
        Some((kind, g, g.input_len()?))
    }

    /// [`kernels::pool`] (`max` 1: max, 0: average); `geom` points at 5
    /// `i32`s: c, h, w, k, stride.
    #[unsafe(no_mangle)]
    pub extern "C" fn kiln_test_pool(max: i32, x: i32, y: i32, batch: i32, geom: i32) {
        let Some((kind, g, inl)) = pool_args(max, geom) else {
            return;
        };
        let rows = batch as usize;
        kernels::pool(
            kind,
            buf(x, (rows * inl) as i32),
            &g,
            buf(y, (rows * g.output_len()) as i32),
        );
    }

    /// Runs the dispatched int8 convolution (accumulators only): `x` and
    /// `w` int8 (`w` packed filters), `b` and `acc` i32; `geom` as for
    /// [`kiln_test_conv2d`]; `pad` the padding value (input zero point).
    #[unsafe(no_mangle)]
    pub extern "C" fn kiln_test_conv2d_i8(
        x: i32,
        w: i32,
        b: i32,
        acc: i32,
        batch: i32,
        geom: i32,
        pad: i32,
    ) {
        use crate::kernels::conv_int8;
        let [in_c, in_h, in_w, out_c, kh, kw, stride, pad_px] = dims(geom);
        let g = crate::ConvGeom {
            in_c,
            in_h,
            in_w,
            out_c,
            kh,
            kw,
            stride,
            pad: pad_px,
        };
        let (Some(()), Some(inl), Some(outl), Some(wl), Some(sl)) = (
            g.check(),
            g.input_len(),
            g.output_len(),
            conv_int8::packed_len(&g),
            conv_int8::scratch_len(&g),
        ) else {
            return;
        };
        let rows = batch as usize;
        let mut cols = alloc::vec![0i32; sl];
        // SAFETY: as in `buf`, with element types the host wrote.
        let (x, w, b, acc) = unsafe {
            (
                slice::from_raw_parts(x as *const i8, rows * inl),
                slice::from_raw_parts(w as *const i8, wl),
                slice::from_raw_parts(b as *const i32, out_c),
                slice::from_raw_parts_mut(acc as *mut i32, rows * outl),
            )
        };
        kernels::conv2d_i8(x, w, b, &g, pad as i8, &mut cols, acc);
    }

    /// [`kernels::pool_i8`] on int8 buffers (`max` 1: max, 0: average);
    /// `geom` as for [`kiln_test_pool`].
    #[unsafe(no_mangle)]
    pub extern "C" fn kiln_test_pool_i8(max: i32, x: i32, y: i32, batch: i32, geom: i32) {
        let Some((kind, g, inl)) = pool_args(max, geom) else {
            return;
        };
        let rows = batch as usize;
        // SAFETY: as in `buf`, int8 buffers the host wrote.
        let (x, y) = unsafe {
            (
                slice::from_raw_parts(x as *const i8, rows * inl),
                slice::from_raw_parts_mut(y as *mut i8, rows * g.output_len()),
            )
        };
        kernels::pool_i8(kind, x, &g, y);
    }

    /// [`kernels::requantize_planes`]: `n` i32 accumulators at `acc` in
    /// planes of `plane`, `channels` multipliers and shifts (i32), int8
    /// output at `y`.
    #[unsafe(no_mangle)]
    #[allow(clippy::too_many_arguments)]
    pub extern "C" fn kiln_test_requantize_planes(
        acc: i32,
        n: i32,
        multiplier: i32,
        shift: i32,
        channels: i32,
        zero_point: i32,
        lo: i32,
        plane: i32,
        y: i32,
    ) {
        let (n, ch) = (n.max(0) as usize, channels.max(0) as usize);
        // SAFETY: as in `buf`, with element types the host wrote.
        let (acc, m, s, y) = unsafe {
            (
                slice::from_raw_parts(acc as *const i32, n),
                slice::from_raw_parts(multiplier as *const i32, ch),
                slice::from_raw_parts(shift as *const i32, ch),
                slice::from_raw_parts_mut(y as *mut i8, n),
            )
        };
        kernels::requantize_planes(acc, m, s, zero_point, lo, plane.max(1) as usize, y);
    }

    /// Runs the dispatched int8 dense kernel (accumulators only). `x` and
    /// `w` are int8 buffers (`w` packed), `b` and `acc` i32 buffers.
    #[unsafe(no_mangle)]
    pub extern "C" fn kiln_test_dense_i8(
        x: i32,
        w: i32,
        b: i32,
        batch: i32,
        inputs: i32,
        outputs: i32,
        acc: i32,
    ) {
        let (inputs_n, outputs_n) = (inputs as usize, outputs as usize);
        let packed = kernels::int8::packed_len(inputs_n, outputs_n).unwrap_or(0);
        // SAFETY: as in `buf`, with element types the host wrote.
        let (x, w, b, acc) = unsafe {
            (
                slice::from_raw_parts(x as *const i8, (batch * inputs) as usize),
                slice::from_raw_parts(w as *const i8, packed),
                slice::from_raw_parts(b as *const i32, outputs_n),
                slice::from_raw_parts_mut(acc as *mut i32, (batch * outputs) as usize),
            )
        };
        kernels::dense_i8(x, w, b, inputs_n, outputs_n, acc);
    }

    /// Runs the dispatched quantize kernel from f32 `x` into int8 `q`.
    #[unsafe(no_mangle)]
    pub extern "C" fn kiln_test_quantize(x: i32, n: i32, inv_scale: f32, zero_point: i32, q: i32) {
        // SAFETY: as in `buf`.
        let q = unsafe { slice::from_raw_parts_mut(q as *mut i8, n as usize) };
        kernels::quantize_i8(buf(x, n), inv_scale, zero_point, q);
    }

    #[unsafe(no_mangle)]
    pub extern "C" fn kiln_test_leaky_relu(x: i32, n: i32, alpha: f32) {
        kernels::leaky_relu(buf(x, n), alpha);
    }

    #[unsafe(no_mangle)]
    pub extern "C" fn kiln_test_prelu(x: i32, slope: i32, batch: i32, channels: i32, inner: i32) {
        kernels::prelu(
            buf(x, batch * channels * inner),
            buf(slope, channels),
            inner as usize,
        );
    }

    #[unsafe(no_mangle)]
    pub extern "C" fn kiln_test_scale_shift(
        x: i32,
        scale: i32,
        shift: i32,
        batch: i32,
        channels: i32,
        inner: i32,
    ) {
        kernels::scale_shift(
            buf(x, batch * channels * inner),
            buf(scale, channels),
            buf(shift, channels),
            inner as usize,
        );
    }

    /// Grouped softmax (`log` 0 or 1) over `n` values in runs of `group`.
    #[unsafe(no_mangle)]
    pub extern "C" fn kiln_test_group_softmax(x: i32, n: i32, group: i32, log: i32) {
        kernels::group_softmax(buf(x, n), group as usize, log != 0);
    }

    #[unsafe(no_mangle)]
    pub extern "C" fn kiln_test_global_avg_pool(
        x: i32,
        batch: i32,
        channels: i32,
        inner: i32,
        y: i32,
    ) {
        kernels::global_avg_pool(
            buf(x, batch * channels * inner),
            channels as usize,
            inner as usize,
            buf(y, batch * channels),
        );
    }

    /// Applies the scalar transcendental `which` (0 exp, 1 sigmoid, 2 tanh,
    /// 3 softmax over rows of `row`, 4 ln) in place.
    #[unsafe(no_mangle)]
    pub extern "C" fn kiln_test_math(which: i32, x: i32, n: i32, row: i32) {
        let x = buf(x, n);
        match which {
            0 => x.iter_mut().for_each(|v| *v = crate::math::exp(*v)),
            1 => kernels::sigmoid(x),
            2 => kernels::tanh(x),
            4 => x.iter_mut().for_each(|v| *v = crate::math::ln(*v)),
            _ => kernels::softmax(x, row as usize),
        }
    }
}
