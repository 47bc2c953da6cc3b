//! Embeds a model blob into the kernel module by re-encoding it section by
//! section (wasmparser in, wasm-encoder out):
//!
//! * the blob goes in a new active data segment at the first 16-byte
//!   boundary at or after `__heap_base`, where the kernel looks for it;
//! * memory 0's initial size grows to cover it (the allocator only ever
//!   takes memory through `memory.grow`, above the initial size);
//! * the data count section, if any, counts the new segment;
//! * a custom section carries the metadata JSON.
//!
//! Every other section is copied byte for byte.

use std::borrow::Cow;

use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{ConstExpr, DataCountSection, DataSection, MemorySection, Module, RawSection};
use wasmparser::{ExternalKind, Operator, Parser, Payload};

use super::{META_SECTION, ModuleError};

const PAGE: u64 = 65536;

pub(super) fn embed(kernel: &[u8], blob: &[u8], meta: &[u8]) -> Result<Vec<u8>, ModuleError> {
    let start = heap_base(kernel)?.next_multiple_of(kiln_guest::blob::ALIGN as u64);
    let end = start + blob.len() as u64;
    if end > u32::MAX as u64 {
        return Err(ModuleError::TooLarge(end as usize));
    }
    let pages = end.div_ceil(PAGE);
    let reencode = |e: wasm_encoder::reencode::Error| ModuleError::Reencode(e.to_string());

    let mut module = Module::new();
    let mut data_done = false;
    let add_segment = |data: &mut DataSection| {
        data.active(0, &ConstExpr::i32_const(start as i32), blob.iter().copied());
    };
    for payload in Parser::new(0).parse_all(kernel) {
        let payload = payload?;
        match &payload {
            Payload::MemorySection(reader) => {
                let mut section = MemorySection::new();
                for (i, memory) in reader.clone().into_iter().enumerate() {
                    let mut ty = RoundtripReencoder.memory_type(memory?).map_err(reencode)?;
                    if i == 0 {
                        ty.minimum = ty.minimum.max(pages);
                        if let Some(max) = ty.maximum.as_mut() {
                            *max = (*max).max(pages);
                        }
                    }
                    section.memory(ty);
                }
                module.section(&section);
            }
            Payload::DataCountSection { count, .. } => {
                module.section(&DataCountSection { count: count + 1 });
            }
            Payload::DataSection(reader) => {
                let mut section = DataSection::new();
                RoundtripReencoder
                    .parse_data_section(&mut section, reader.clone())
                    .map_err(reencode)?;
                add_segment(&mut section);
                module.section(&section);
                data_done = true;
            }
            Payload::End(_) => {
                if !data_done {
                    let mut section = DataSection::new();
                    add_segment(&mut section);
                    module.section(&section);
                }
                module.section(&wasm_encoder::CustomSection {
                    name: Cow::Borrowed(META_SECTION),
                    data: Cow::Borrowed(meta),
                });
            }
            Payload::CustomSection(c) if c.name() == META_SECTION => {}
            _ => {
                if let Some((id, range)) = payload.as_section() {
                    module.section(&RawSection {
                        id,
                        data: &kernel[range.start as usize..range.end as usize],
                    });
                }
            }
        }
    }
    Ok(module.finish())
}

/// The initial value of the exported `__heap_base` global.
fn heap_base(kernel: &[u8]) -> Result<u64, ModuleError> {
    let mut index = None;
    let mut inits = Vec::new();
    for payload in Parser::new(0).parse_all(kernel) {
        match payload? {
            Payload::ImportSection(_) => {
                // The kernel imports nothing; imported globals would shift
                // the indices below.
                return Err(ModuleError::NoHeapBase);
            }
            Payload::GlobalSection(reader) => {
                for g in reader {
                    let mut ops = g?.init_expr.get_operators_reader();
                    inits.push(match ops.read()? {
                        Operator::I32Const { value } => Some(value as u32 as u64),
                        _ => None,
                    });
                }
            }
            Payload::ExportSection(reader) => {
                for e in reader {
                    let e = e?;
                    if e.name == "__heap_base" && e.kind == ExternalKind::Global {
                        index = Some(e.index as usize);
                    }
                }
            }
            _ => {}
        }
    }
    index
        .and_then(|i| inits.get(i).copied().flatten())
        .ok_or(ModuleError::NoHeapBase)
}
