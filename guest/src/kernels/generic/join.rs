//! Scalar references of the ops that join two or more computed tensors in
//! a graph model: element-wise `add` (residual connections), `gate` (a
//! tensor times a per-channel gate, squeeze-and-excitation) and channel
//! `concat`.
//!
//! Like the rest of [`super`], each function *defines* its op's bits: one
//! IEEE operation per output, no reordering. Rows are channel-major
//! (`channels × inner`, the NCHW layout without the batch), and a batch's
//! rows follow one another, so `x` and its operands hold the same number of
//! rows.

/// `x[i] = x[i] + y[i]` over the shorter of the two.
pub fn add(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// `x[k] = x[k] · gate[k / inner]`: each run of `inner` values of `x` times
/// its gate — per channel when `x`'s rows are `channels × inner` and the
/// gate's rows `channels` (`inner = 1`: element-wise).
pub fn gate(x: &mut [f32], gate: &[f32], inner: usize) {
    for (run, &g) in x.chunks_exact_mut(inner.max(1)).zip(gate) {
        for v in run {
            *v *= g;
        }
    }
}

/// Copies each row of `part` (rows of `width` values) into columns
/// `at .. at + width` of the rows of `out` (rows of `total` values): one
/// input of a concatenation along the row's leading (channel) axis.
pub fn concat(out: &mut [f32], part: &[f32], width: usize, at: usize, total: usize) {
    let Some(end) = at.checked_add(width) else {
        return;
    };
    if width == 0 || total == 0 {
        return;
    }
    for (row, src) in out.chunks_exact_mut(total).zip(part.chunks_exact(width)) {
        if let Some(dst) = row.get_mut(at..end) {
            dst.copy_from_slice(src);
        }
    }
}
