//! Typed errors of the guest: decoding a blob, validating a graph, running it.
//!
//! `Display` is implemented by hand (no `thiserror`, which needs `std`
//! formatting machinery the wasm kernel does not otherwise link); the host
//! wraps these in its own error enums.

use core::fmt;

/// A layer graph that does not hold together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelError {
    /// The graph has no input features.
    EmptyInput,
    /// Layer `layer` expects `expected` values per row but receives `found`.
    Shape {
        layer: usize,
        expected: usize,
        found: usize,
    },
    /// A tensor of layer `layer` has the wrong number of elements.
    TensorLen {
        layer: usize,
        tensor: &'static str,
        expected: usize,
        found: usize,
    },
    /// Layer `layer`'s dimensions overflow or exceed [`crate::MAX_WIDTH`].
    TooLarge { layer: usize },
    /// A tensor of layer `layer` holds NaN or an infinity.
    NotFinite { layer: usize, tensor: &'static str },
    /// Layer `layer`'s convolution or pooling geometry is impossible (a zero
    /// size or stride, a window larger than its padded input).
    Geometry { layer: usize },
    /// Layer `layer` reads `expected` values (f32 or int8) but receives
    /// `found`; `layer == layers.len()` means the model's output.
    Domain {
        layer: usize,
        expected: &'static str,
        found: &'static str,
    },
    /// A quantization parameter of layer `layer` is out of range.
    Quant { layer: usize, what: &'static str },
    /// A scalar parameter of layer `layer` is out of range (zero, not
    /// finite, or not dividing the row).
    BadParam { layer: usize, param: &'static str },
    /// Layer `layer` reads `expected` tensors but is given `found` (a
    /// joining layer in a chain model, or a graph node's input list).
    Arity {
        layer: usize,
        expected: usize,
        found: usize,
    },
    /// Layer `layer` of a graph model reads tensor `tensor`, which no
    /// earlier layer produces (tensor 0 is the input, tensor `i + 1` the
    /// output of layer `i`): a cycle, or layers out of order.
    UnknownTensor { layer: usize, tensor: usize },
    /// Tensor `tensor` of a graph model is computed but never read: a model
    /// has one output, its last layer's.
    UnusedTensor { tensor: usize },
    /// Layer `layer` of a graph model is an int8 layer; they run in chain
    /// models only.
    Int8InGraph { layer: usize },
    /// Layer `layer` of a graph model is a recurrent layer; they run in
    /// chain models only.
    RecurrentInGraph { layer: usize },
    /// Layer `layer` of a graph model is a tree ensemble; they run in
    /// chain models only.
    TreesInGraph { layer: usize },
    /// Node `node` of tree layer `layer` has an impossible `field` (its
    /// mode, flags, feature, a child not after it or past the table, or a
    /// leaf's entry range).
    TreeNode {
        layer: usize,
        node: usize,
        field: &'static str,
    },
    /// Tree `tree` of layer `layer` has a root past the node table.
    TreeRoot { layer: usize, tree: usize },
    /// Leaf entry `entry` of tree layer `layer` adds to a target the layer
    /// does not have.
    TreeLeaf { layer: usize, entry: usize },
    /// Layer `layer` (op `op`) belongs to a layer family this kernel build
    /// leaves out (guest feature `feature`, see `src/model/family.rs`).
    NotInKernel {
        layer: usize,
        op: &'static str,
        feature: &'static str,
    },
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyInput => write!(f, "the model has no input features"),
            Self::Shape {
                layer,
                expected,
                found,
            } => write!(
                f,
                "layer {layer} expects {expected} values per row but the previous layer produces {found}"
            ),
            Self::TensorLen {
                layer,
                tensor,
                expected,
                found,
            } => write!(
                f,
                "layer {layer}: tensor `{tensor}` has {found} elements, expected {expected}"
            ),
            Self::TooLarge { layer } => write!(f, "layer {layer}: dimensions are too large"),
            Self::NotFinite { layer, tensor } => {
                write!(f, "layer {layer}: tensor `{tensor}` holds NaN or infinity")
            }
            Self::Geometry { layer } => write!(
                f,
                "layer {layer}: impossible convolution or pooling geometry (zero size or stride, or a window larger than its input)"
            ),
            Self::Domain {
                layer,
                expected,
                found,
            } => write!(
                f,
                "layer {layer} reads {expected} values but receives {found} values (the model's output must be f32)"
            ),
            Self::Quant { layer, what } => write!(f, "layer {layer}: {what}"),
            Self::BadParam { layer, param } => {
                write!(f, "layer {layer}: parameter `{param}` is out of range")
            }
            Self::Arity {
                layer,
                expected,
                found,
            } => write!(
                f,
                "layer {layer} reads {expected} tensors but is given {found} (layers that join tensors need a graph model)"
            ),
            Self::UnknownTensor { layer, tensor } => write!(
                f,
                "layer {layer} reads tensor {tensor}, which no earlier layer produces (a cycle, or layers out of order)"
            ),
            Self::UnusedTensor { tensor } => write!(
                f,
                "tensor {tensor} is never read: a model has one output, its last layer's"
            ),
            Self::Int8InGraph { layer } => write!(
                f,
                "layer {layer}: int8 layers run only in chain models, not in graphs"
            ),
            Self::RecurrentInGraph { layer } => write!(
                f,
                "layer {layer}: recurrent layers run only in chain models, not in graphs"
            ),
            Self::TreesInGraph { layer } => write!(
                f,
                "layer {layer}: tree ensembles run only in chain models, not in graphs"
            ),
            Self::TreeNode { layer, node, field } => {
                write!(
                    f,
                    "layer {layer}: tree node {node}: `{field}` is out of range"
                )
            }
            Self::TreeRoot { layer, tree } => {
                write!(
                    f,
                    "layer {layer}: tree {tree}: its root is past the node table"
                )
            }
            Self::TreeLeaf { layer, entry } => write!(
                f,
                "layer {layer}: leaf entry {entry} adds to a target the layer does not have"
            ),
            Self::NotInKernel { layer, op, feature } => write!(
                f,
                "layer {layer} ({op}) is not in this kernel build (guest feature `{feature}`); run the model module `kiln build` makes, which embeds the kernel the model needs (docs/abi.md)"
            ),
        }
    }
}

/// A model blob that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The blob ends before byte `at` that it needs.
    Truncated { at: usize },
    /// The blob does not start with [`crate::blob::MAGIC`].
    BadMagic,
    /// The blob's format version is not one this kernel reads.
    UnsupportedVersion { found: u32 },
    /// The header's length disagrees with the bytes present.
    LengthMismatch { declared: usize, actual: usize },
    /// Layer `layer` has an op code this kernel does not know.
    UnknownOp { layer: usize, op: u32 },
    /// Layer `layer` has the wrong number of parameters for its op.
    BadParams { layer: usize },
    /// A tensor of layer `layer` points outside the blob or is misaligned.
    BadTensor { layer: usize },
    /// More layers than the blob could possibly hold.
    TooManyLayers { count: usize },
    /// The decoded graph is inconsistent.
    Model(ModelError),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { at } => write!(f, "model blob is truncated at byte {at}"),
            Self::BadMagic => write!(f, "not a kiln model blob (bad magic)"),
            Self::UnsupportedVersion { found } => {
                write!(f, "model blob version {found} is not supported")
            }
            Self::LengthMismatch { declared, actual } => write!(
                f,
                "model blob declares {declared} bytes but {actual} are present"
            ),
            Self::UnknownOp { layer, op } => write!(f, "layer {layer}: unknown op code {op}"),
            Self::BadParams { layer } => write!(f, "layer {layer}: wrong parameter count"),
            Self::BadTensor { layer } => {
                write!(
                    f,
                    "layer {layer}: tensor lies outside the blob or is misaligned"
                )
            }
            Self::TooManyLayers { count } => write!(f, "{count} layers cannot fit in the blob"),
            Self::Model(e) => e.fmt(f),
        }
    }
}

impl From<ModelError> for DecodeError {
    fn from(e: ModelError) -> Self {
        Self::Model(e)
    }
}

/// A run request that cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunError {
    /// The batch is zero, or its buffers would exceed the size limit.
    BadBatch,
    /// `run` was called for a batch other than the one prepared.
    NotPrepared,
    /// The allocator could not provide the buffers.
    OutOfMemory,
    /// The input slice is not a whole number of rows.
    InputLen,
}

impl RunError {
    /// The negative code `kiln_run` returns for this error (see docs/abi.md).
    pub const fn code(self) -> i32 {
        match self {
            Self::BadBatch | Self::InputLen => -2,
            Self::NotPrepared => -3,
            Self::OutOfMemory => -4,
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadBatch => "batch size is zero or too large",
            Self::NotPrepared => "kiln_run called for a batch that kiln_input did not prepare",
            Self::OutOfMemory => "out of memory for the batch buffers",
            Self::InputLen => "input is not a whole number of rows",
        })
    }
}

impl core::error::Error for ModelError {}
impl core::error::Error for DecodeError {}
impl core::error::Error for RunError {}
