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
