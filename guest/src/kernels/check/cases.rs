//! The shared case table: the shapes every kernel is checked on, chosen
//! around each kernel's blocking (vector widths, tiles, panels, row groups,
//! the overlapped last block) and the benchmark models' layers.

/// Dense layers `(batch, inputs, outputs)`. f32: around the 24-wide panels
/// and the narrower last panels (26: 2 outputs left, 30: 6, 29: 5, 45: 21),
/// the 8- and 4-wide blocks (the last vector of a panel moves back over its
/// neighbour), the 4-row blocks. int8: around the 4-input quads, the 16-
/// and 32-output passes and the 4-row blocks. Both: the MLP's and LeNet's
/// layers.
pub const DENSE: &[[usize; 3]] = &[
    [4, 5, 26],
    [6, 9, 30],
    [4, 3, 45],
    [5, 11, 29],
    [1, 256, 120],
    [2, 6, 26],
    [1, 11, 50],
    [1, 84, 10],
    [6, 120, 84],
    [1, 1, 1],
    [1, 7, 3],
    [2, 7, 3],
    [2, 5, 16],
    [3, 33, 37],
    [1, 64, 20],
    [4, 17, 50],
    [2, 9, 64],
    [1, 40, 100],
    [9, 13, 23],
    [8, 20, 8],
    [5, 3, 4],
    [1, 784, 256],
    [5, 256, 120],
    [1, 2, 8],
    [2, 3, 9],
    [2, 15, 7],
    [1, 16, 32],
    [3, 17, 33],
    [1, 64, 40],
    [4, 64, 10],
    [2, 100, 70],
    [5, 131, 36],
    [32, 33, 10],
];

/// Row widths of the element-wise ops: below, at and around one vector.
pub const WIDTHS: &[usize] = &[1, 3, 4, 5, 7, 64, 67];

/// Convolutions `[in_c, in_h, in_w, out_c, kh, kw, stride, pad]`
/// ([`crate::ConvGeom::new`]'s order), f32 and int8: output channels around
/// the 4-wide blocks and the int8 filter groups of 4, padding (int8: read
/// as the zero point), strides, odd and even kernel widths, odd shapes;
/// the blocked tiles (4 channels × 8 columns): LeNet's two convolutions,
/// overlapping last tiles in channels and columns, rows narrower than a
/// tile, padding borders, stride 2 (gathered lanes); the f32 remainders
/// after whole 4-channel tiles — 2 and 1 at stride 1 (a 2-channel tile;
/// with 1 it overlaps the last 4-tile), at stride 2 (a 4-tile moved back),
/// 3 — and fewer than 4 channels (the scalar path).
pub const CONV: &[[usize; 8]] = &[
    [1, 8, 8, 16, 3, 3, 1, 1],
    [1, 8, 8, 8, 3, 3, 1, 0],
    [16, 4, 4, 32, 3, 3, 1, 1],
    [3, 7, 5, 21, 3, 2, 2, 1],
    [2, 5, 6, 3, 1, 1, 1, 0],
    [4, 9, 9, 5, 5, 5, 3, 2],
    [1, 28, 28, 6, 5, 5, 1, 0],
    [6, 12, 12, 16, 5, 5, 1, 0],
    [2, 11, 19, 7, 3, 3, 1, 2],
    [3, 13, 29, 2, 4, 3, 2, 1],
    [3, 13, 29, 5, 4, 3, 2, 1],
    [2, 6, 40, 9, 3, 3, 2, 1],
    [1, 6, 13, 1, 2, 2, 1, 1],
    [2, 9, 20, 10, 3, 3, 1, 1],
    [2, 7, 19, 9, 3, 3, 1, 0],
    [1, 10, 30, 13, 3, 3, 2, 0],
    [2, 10, 21, 14, 3, 3, 2, 1],
    [1, 8, 8, 7, 3, 3, 1, 0],
    [1, 3, 3, 1, 3, 3, 1, 2],
    [5, 6, 13, 7, 2, 4, 1, 1],
    [2, 11, 19, 9, 3, 3, 2, 1],
    [3, 4, 30, 4, 1, 7, 3, 3],
];

/// f32 convolutions beyond the plain geometry, `[in_c, in_h, in_w, out_c,
/// kh, kw, stride, pad top, left, bottom, right, dilation, groups]`
/// ([`crate::ConvGeom::from_full`]'s order). Depthwise: a MobileNet 3×3
/// layer at stride 1, and at stride 2 with TensorFlow's SAME (the odd pad
/// bottom and right) and with even pads; interior widths below 8 (all
/// scalar), of one 8-column tile, and of several overlapping ones; dilation 2; 5×5
/// (MobileNetV3); stride 3 (gathers). Grouped: a channel multiplier of 2
/// (groups = in_c < out_c), 2 and 3 groups of several channels (the
/// blocked tiles per group). Full: MobileNet's first layer (stride 2,
/// SAME), dilation 2, uneven pads on every side.
pub const CONV_FULL: &[[usize; 13]] = &[
    [32, 24, 24, 32, 3, 3, 1, 1, 1, 1, 1, 1, 32],
    [16, 24, 24, 16, 3, 3, 2, 0, 0, 1, 1, 1, 16],
    [8, 13, 13, 8, 3, 3, 2, 1, 1, 1, 1, 1, 8],
    [5, 6, 6, 5, 3, 3, 1, 1, 1, 1, 1, 1, 5],
    [4, 5, 11, 4, 3, 3, 1, 1, 1, 1, 1, 1, 4],
    [3, 7, 20, 3, 3, 3, 1, 1, 1, 1, 1, 1, 3],
    [6, 10, 21, 6, 3, 3, 1, 2, 2, 2, 2, 2, 6],
    [4, 9, 19, 4, 5, 5, 1, 2, 2, 2, 2, 1, 4],
    [4, 11, 30, 4, 3, 3, 3, 1, 1, 1, 1, 1, 4],
    [3, 7, 9, 6, 3, 3, 1, 1, 1, 1, 1, 1, 3],
    [8, 9, 12, 8, 3, 3, 1, 1, 1, 1, 1, 1, 2],
    [6, 8, 17, 12, 3, 3, 2, 0, 0, 1, 1, 1, 3],
    [3, 16, 16, 8, 3, 3, 2, 0, 0, 1, 1, 1, 1],
    [2, 12, 20, 8, 3, 3, 1, 2, 2, 2, 2, 2, 1],
    [2, 9, 20, 5, 3, 3, 1, 1, 0, 2, 1, 1, 1],
];

/// Pooling `[c, h, w, k, stride]`, f32 and int8: stride 1 (vector loads),
/// 2 (f32: two loads and a shuffle per tap; 2×2 windows by even/odd
/// shuffles of whole rows, with a scalar tail when the row is not whole
/// vectors; the last read is a row's last float in `[2, 6, 16, 2, 2]` and
/// `[1, 5, 9, 3, 2]`), 3 (gathers), widths around 4 output columns; an odd
/// height (each plane's last row unread) in `[2, 9, 17, 2, 2]`; int8: rows
/// around 16 values and the overlapped last step of the 2×2 max kernel.
pub const POOL: &[[usize; 5]] = &[
    [6, 24, 24, 2, 2],
    [3, 10, 13, 2, 2],
    [2, 9, 17, 2, 2],
    [2, 6, 16, 2, 2],
    [2, 11, 19, 3, 2],
    [1, 5, 9, 3, 2],
    [16, 8, 8, 2, 2],
    [3, 9, 11, 3, 1],
    [2, 12, 13, 3, 3],
    [1, 4, 4, 2, 2],
    [5, 6, 17, 2, 1],
    [3, 17, 33, 2, 2],
    [2, 16, 16, 2, 2],
    [2, 9, 21, 3, 2],
    [1, 5, 7, 2, 1],
];

/// Per-channel ops `(batch, channels, inner)`: around the 4-wide blocks,
/// `inner == 1` (four channels per vector) included.
pub const CHANNELS: &[[usize; 3]] = &[
    [1, 1, 1],
    [2, 5, 1],
    [3, 8, 1],
    [2, 3, 4],
    [2, 4, 7],
    [1, 6, 25],
];

/// Grouped (log-)softmax `(group, log)` over 6,000 values.
pub const GROUPS: &[(usize, bool)] = &[(1, false), (5, false), (10, true), (6000, true)];

/// Quantize `(n, inv_scale, zero_point)`.
pub const QUANTIZE: &[(usize, f32, i32)] = &[
    (1, 1.0, 0),
    (7, 2.0, -3),
    (64, 0.5, 127),
    (333, 37.5, -128),
    (1000, 1e-3, 5),
];

/// Requantize of convolution planes `(channels, plane, zero_point)`:
/// planes of 576, 64 and odd lengths (the 16-value steps' scalar tail), both
/// zero-point extremes.
pub const REQUANTIZE: &[(usize, usize, i32)] = &[
    (6, 576, -128),
    (16, 64, 127),
    (3, 17, 0),
    (5, 1, -5),
    (2, 35, 42),
];
