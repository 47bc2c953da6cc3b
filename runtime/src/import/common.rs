//! What the importers share once a model is lowered: the tensors of its
//! layers, named `layer{i}.{name}` as kiln names its own, and the kiln
//! layer specs of the layers both importers emit.

use std::collections::BTreeMap;

use ndarray::Array2;

use crate::model::{LayerSpec, Task, Tensor};

/// The tensors of layer `index`, added to `tensors`.
pub(super) struct LayerTensors<'t> {
    pub(super) tensors: &'t mut BTreeMap<String, Tensor>,
    pub(super) index: usize,
}

impl LayerTensors<'_> {
    /// Adds the layer's tensor `name`; gives its key.
    pub(super) fn add(&mut self, name: &str, shape: Vec<usize>, data: Vec<f32>) -> String {
        let key = format!("layer{}.{name}", self.index);
        self.tensors.insert(key.clone(), Tensor::new(shape, data));
        key
    }

    /// Adds the layer's tensor `name` of any dtype; gives its key.
    pub(super) fn insert(&mut self, name: &str, tensor: Tensor) -> String {
        let key = format!("layer{}.{name}", self.index);
        self.tensors.insert(key.clone(), tensor);
        key
    }

    /// A dense layer; `weight` is `[outputs, inputs]`.
    pub(super) fn dense(&mut self, weight: Array2<f32>, bias: Vec<f32>) -> LayerSpec {
        let shape = weight.shape().to_vec();
        let m = bias.len();
        LayerSpec::Dense {
            weight: self.add("weight", shape, weight.into_iter().collect()),
            bias: self.add("bias", vec![m], bias),
        }
    }

    /// A per-channel `scale_shift`.
    pub(super) fn scale_shift(&mut self, scale: Vec<f32>, shift: Vec<f32>) -> LayerSpec {
        let c = scale.len();
        LayerSpec::ScaleShift {
            scale: self.add("scale", vec![c], scale),
            shift: self.add("shift", vec![c], shift),
        }
    }

    /// A convolution; `weight` is its shape `[out_c, in_c / groups, kh,
    /// kw]` and values, `pads` top, left, bottom, right.
    pub(super) fn conv2d(
        &mut self,
        (shape, weight): (Vec<usize>, Vec<f32>),
        bias: Vec<f32>,
        stride: usize,
        pads: [usize; 4],
        dilation: usize,
        groups: usize,
    ) -> LayerSpec {
        let m = bias.len();
        // Even padding stays the plain `padding` field.
        let even = pads == [pads[0]; 4];
        LayerSpec::Conv2d {
            weight: self.add("weight", shape, weight),
            bias: self.add("bias", vec![m], bias),
            stride,
            padding: if even { pads[0] } else { 0 },
            pads: (!even).then_some(pads),
            dilation,
            groups,
        }
    }
}

/// A max or average pool.
pub(super) fn pool(max: bool, kernel: usize, stride: usize) -> LayerSpec {
    let stride = Some(stride);
    if max {
        LayerSpec::MaxPool { kernel, stride }
    } else {
        LayerSpec::AvgPool { kernel, stride }
    }
}

/// The task `given`, else classification for a model that ends in a
/// classifier (a softmax) and regression otherwise.
pub(super) fn task(given: Option<Task>, classifier: bool) -> Task {
    given.unwrap_or(if classifier {
        Task::Classification
    } else {
        Task::Regression
    })
}
