//! The weight layouts the kernels read, and the functions that pack a
//! model file's weights into them.
//!
//! * [`dense`] — f32 dense layers: column panels, 24 outputs wide.
//! * [`dense_i8`] — int8 dense layers: units of 4 outputs × 4 inputs.
//! * [`conv_i8`] — int8 convolution filters: pairs of horizontal taps of 4
//!   output channels; and the blocked kernels' per-image scratch size.
//!
//! f32 convolution filters are stored tap-major (`in_c × kh × kw × out_c`,
//! transposed from the model file's filters by [`crate::Layer`]'s
//! constructor), which every kernel reads as it is.

pub mod conv_i8;
pub mod dense;
pub mod dense_i8;
