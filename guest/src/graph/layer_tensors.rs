//! [`LayerTensors`]: the tensors one layer of a graph names, fetched and
//! shape-checked with errors that name the layer, its op and the tensor —
//! the one place the float and int8 conversions look tensors up.

use std::collections::BTreeMap;
use std::format;
use std::string::String;

use super::{ConvertError, Tensor, TensorData};

/// Layer `layer` (op `op`) of a graph, looking up its tensors.
#[derive(Clone, Copy)]
pub(super) struct LayerTensors<'t> {
    pub(super) tensors: &'t BTreeMap<String, Tensor>,
    pub(super) layer: usize,
    pub(super) op: &'static str,
}

impl<'t> LayerTensors<'t> {
    /// The tensor called `name`.
    pub(super) fn get(&self, name: &str) -> Result<&'t Tensor, ConvertError> {
        self.tensors
            .get(name)
            .ok_or_else(|| ConvertError::MissingTensor {
                layer: self.layer,
                op: self.op,
                tensor: name.into(),
            })
    }

    pub(super) fn shape_err(&self, name: &str, found: &[usize], expected: String) -> ConvertError {
        ConvertError::TensorShape {
            layer: self.layer,
            op: self.op,
            tensor: name.into(),
            found: found.into(),
            expected,
        }
    }

    pub(super) fn quant_err(&self, what: String) -> ConvertError {
        ConvertError::Quant {
            layer: self.layer,
            op: self.op,
            what,
        }
    }

    /// The f32 values of `tensor` (called `name`).
    pub(super) fn f32s(&self, name: &str, tensor: &'t Tensor) -> Result<&'t [f32], ConvertError> {
        tensor.f32_data(self.layer, self.op, name)
    }

    /// The int8 values of `tensor` (called `name`).
    pub(super) fn i8s(&self, name: &str, tensor: &'t Tensor) -> Result<&'t [i8], ConvertError> {
        match &tensor.data {
            TensorData::I8(v) => Ok(v),
            _ => Err(tensor.dtype_err(self.layer, self.op, name, "I8")),
        }
    }

    /// The i32 values of `tensor` (called `name`).
    pub(super) fn i32s(&self, name: &str, tensor: &'t Tensor) -> Result<&'t [i32], ConvertError> {
        match &tensor.data {
            TensorData::I32(v) => Ok(v),
            _ => Err(tensor.dtype_err(self.layer, self.op, name, "I32")),
        }
    }

    /// The tensor `name`, which must be a vector of `len` values.
    pub(super) fn vector(&self, name: &str, len: usize) -> Result<&'t Tensor, ConvertError> {
        let t = self.get(name)?;
        if t.shape != [len] {
            return Err(self.shape_err(name, &t.shape, format!("[{len}]")));
        }
        Ok(t)
    }

    /// A dense layer's weight `name`, `[outputs, width]`, and its outputs.
    pub(super) fn dense_weight(
        &self,
        name: &str,
        width: usize,
    ) -> Result<(&'t Tensor, usize), ConvertError> {
        let w = self.get(name)?;
        match *w.shape.as_slice() {
            [outputs, inputs] if inputs == width => Ok((w, outputs)),
            [outputs, _] => Err(self.shape_err(name, &w.shape, format!("[{outputs}, {width}]"))),
            _ => Err(self.shape_err(name, &w.shape, format!("[outputs, {width}]"))),
        }
    }

    /// A convolution's filters `name`, `[out_c, in_c, kh, kw]`, and
    /// `(out_c, kh, kw)`.
    pub(super) fn conv_weight(
        &self,
        name: &str,
        in_c: usize,
    ) -> Result<(&'t Tensor, (usize, usize, usize)), ConvertError> {
        let w = self.get(name)?;
        match *w.shape.as_slice() {
            [out_c, c, kh, kw] if c == in_c => Ok((w, (out_c, kh, kw))),
            [out_c, _, kh, kw] => {
                Err(self.shape_err(name, &w.shape, format!("[{out_c}, {in_c}, {kh}, {kw}]")))
            }
            _ => Err(self.shape_err(name, &w.shape, format!("[out_c, {in_c}, kh, kw]"))),
        }
    }
}
