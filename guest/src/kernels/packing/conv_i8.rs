//! The filter layout of int8 convolutions, and the size of the blocked
//! kernels' per-image pair buffer.
//!
//! Filters are stored for the blocked kernels, which multiply *pairs* of
//! horizontally neighbouring taps (`kx = 2j, 2j+1`) of four output channels
//! at once with `i32x4.dot_i16x8_s` / `pmaddwd`: output channels in groups
//! of four, then `c`, `ky`, the pair `j`, the channel in its group, the tap
//! in its pair — `[⌈out_c/4⌉][in_c][kh][⌈kw/2⌉][4][2]` bytes
//! ([`pack_filters`]). Channels beyond `out_c` and the tap beyond an odd
//! `kw` are zeros, so they add nothing.

use crate::kernels::geometry::ConvGeom;

/// Output channels per filter group of the packed layout.
pub const GROUP: usize = 4;

/// `kw` rounded up to a whole number of tap pairs.
fn kw2(g: &ConvGeom) -> Option<usize> {
    g.kw.checked_next_multiple_of(2)
}

/// Length of the packed filters (`⌈out_c/4⌉·4 · in_c · kh · kw2`), `None`
/// on overflow.
pub fn packed_len(g: &ConvGeom) -> Option<usize> {
    g.out_c
        .checked_next_multiple_of(GROUP)?
        .checked_mul(g.in_c)?
        .checked_mul(g.kh)?
        .checked_mul(kw2(g)?)
}

/// Index in the packed filters of output channel `o`'s tap `(c, ky, kx)`.
#[inline(always)]
pub(crate) fn packed_index(g: &ConvGeom, o: usize, c: usize, ky: usize, kx: usize) -> usize {
    let pairs = g.kw.div_ceil(2);
    let unit = ((o / GROUP * g.in_c + c) * g.kh + ky) * pairs + kx / 2;
    (unit * GROUP + o % GROUP) * 2 + kx % 2
}

/// Packs PyTorch-layout filters (`out_c × in_c × kh × kw`) into the layout
/// of the module note. `filters.len()` must be `g.weight_len()` and
/// `packed.len()` [`packed_len`]; otherwise nothing is written.
pub fn pack_filters(filters: &[i8], g: &ConvGeom, packed: &mut [i8]) {
    if Some(filters.len()) != g.weight_len() || Some(packed.len()) != packed_len(g) {
        return;
    }
    packed.fill(0);
    let mut src = filters.iter();
    for o in 0..g.out_c {
        for c in 0..g.in_c {
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    if let Some(&v) = src.next() {
                        packed[packed_index(g, o, c, ky, kx)] = v;
                    }
                }
            }
        }
    }
}

/// i32 scratch the blocked kernels need for one image (their padded pair
/// buffer, see `blocked::conv_i8`): `in_c · (in_h + 2·pad) · row` with
/// `row = (max(out_w, 8) − 1)·stride + kw2 − 1`; `None` on overflow.
pub fn scratch_len(g: &ConvGeom) -> Option<usize> {
    let row = (g.out_w().max(8) - 1)
        .checked_mul(g.stride)?
        .checked_add(kw2(g)? - 1)?;
    g.in_h
        .checked_add(g.pad_top.checked_mul(2)?)?
        .checked_mul(row)?
        .checked_mul(g.in_c)
}
