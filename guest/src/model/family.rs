//! The layer families a kernel build may leave out, one line each.
//!
//! Every layer of a family holds the family's marker, a zero-sized type
//! that only the family's gate function makes, and only when the family's
//! cargo feature is on; without the feature the marker is an empty enum, so
//! no layer of the family can exist and the compiler drops every path that
//! would decode, check or run one — the family's code and kernels stay out
//! of the module — while the code itself still compiles (and is checked) in
//! every build. In a build without the family the gate refuses the layer by
//! name ([`ModelError::NotInKernel`]).
//!
//! A new family is a cargo feature (`guest/Cargo.toml`), a line below, its
//! layers holding the marker, and its kernel build in `runtime/build.rs`.
//! (Graph models, feature `dag`, are a blob version rather than a family of
//! layers: `crate::blob` refuses their version.)

use crate::ModelError;

/// Declares a family: its marker type and its gate function.
macro_rules! family {
    ($(#[$doc:meta])* $marker:ident, $gate:ident, $feature:literal) => {
        $(#[$doc])*
        #[cfg(feature = $feature)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $marker(());
        $(#[$doc])*
        #[cfg(not(feature = $feature))]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $marker {}

        /// The family's marker for layer `layer` (op `op`), or the error
        /// refusing it in a build without the family.
        pub(crate) fn $gate(layer: usize, op: &'static str) -> Result<$marker, ModelError> {
            #[cfg(feature = $feature)]
            const HERE: Option<$marker> = Some($marker(()));
            #[cfg(not(feature = $feature))]
            const HERE: Option<$marker> = None;
            HERE.ok_or(ModelError::NotInKernel {
                layer,
                op,
                feature: $feature,
            })
        }
    };
}

family!(
    /// The marker of the CNN family ([`crate::ConvLayer`], feature `conv`).
    Conv,
    conv,
    "conv"
);

family!(
    /// The marker of the tree family ([`crate::TreeLayer`], feature
    /// `trees`).
    Trees,
    trees,
    "trees"
);

family!(
    /// The marker of int8 weights in a recurrent layer
    /// ([`crate::RecurrentI8`], feature `int8-rnn`).
    Int8Rnn,
    int8_rnn,
    "int8-rnn"
);

family!(
    /// The marker of the recurrent family ([`crate::RecurrentLayer`],
    /// feature `rnn`).
    Rnn,
    rnn,
    "rnn"
);
