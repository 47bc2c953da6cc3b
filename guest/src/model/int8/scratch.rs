//! [`Int8Scratch`]: the buffers the int8 layers run in, beside the f32
//! ones of [`crate::Scratch`].

use alloc::vec::Vec;

use crate::RunError;
use crate::model::grow;

/// Buffers of the int8 path: current and next int8 activations, the i32
/// accumulators, and the per-row scales of dynamic quantization.
#[derive(Debug, Default)]
pub(crate) struct Int8Scratch {
    pub(super) cur: Vec<i8>,
    pub(super) next: Vec<i8>,
    pub(super) acc: Vec<i32>,
    pub(super) row_scale: Vec<f32>,
    /// The padded pair buffer of int8 convolutions
    /// ([`crate::kernels::packing::conv_i8::scratch_len`]).
    pub(super) cols: Vec<i32>,
}

impl Int8Scratch {
    pub(crate) const fn new() -> Self {
        Int8Scratch {
            cur: Vec::new(),
            next: Vec::new(),
            acc: Vec::new(),
            row_scale: Vec::new(),
            cols: Vec::new(),
        }
    }

    /// Grows the buffers to `len` values for `batch` rows, and the
    /// convolution scratch to `cols` (the most any of the model's int8
    /// convolutions needs, [`super::Int8Layer::cols_len`]).
    pub(crate) fn reserve(
        &mut self,
        batch: usize,
        len: usize,
        cols: usize,
    ) -> Result<(), RunError> {
        grow(&mut self.cur, len)?;
        grow(&mut self.next, len)?;
        grow(&mut self.acc, len)?;
        grow(&mut self.row_scale, batch)?;
        grow(&mut self.cols, cols)
    }
}
