//! The shapes of the image layers: [`ConvGeom`] for 2-D convolution,
//! [`PoolGeom`] for pooling, and [`PoolKind`].
//!
//! Each shape is built from its sizes in one order — the order the model
//! blob stores them in ([`ConvGeom::new`], [`PoolGeom::new`]) — and checked
//! once by its `check`, on which the kernels' index arithmetic rests.

/// The shape of a 2-D convolution layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    pub in_c: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_c: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    /// Zero padding added on every side.
    pub pad: usize,
}

impl ConvGeom {
    /// The shape with sizes `[in_c, in_h, in_w, out_c, kh, kw, stride,
    /// pad]` (the blob's order, [`Self::dims`]); unchecked.
    pub const fn new(dims: [usize; 8]) -> Self {
        let [in_c, in_h, in_w, out_c, kh, kw, stride, pad] = dims;
        ConvGeom {
            in_c,
            in_h,
            in_w,
            out_c,
            kh,
            kw,
            stride,
            pad,
        }
    }

    /// The sizes in [`Self::new`]'s order.
    pub const fn dims(&self) -> [usize; 8] {
        [
            self.in_c,
            self.in_h,
            self.in_w,
            self.out_c,
            self.kh,
            self.kw,
            self.stride,
            self.pad,
        ]
    }

    /// `Some` when every size is positive, the padded input holds the
    /// kernel, and no length overflows.
    pub fn check(&self) -> Option<()> {
        let all = [
            self.in_c, self.in_h, self.in_w, self.out_c, self.kh, self.kw,
        ];
        if all.contains(&0) || self.stride == 0 {
            return None;
        }
        let (ph, pw) = (
            self.in_h.checked_add(self.pad.checked_mul(2)?)?,
            self.in_w.checked_add(self.pad.checked_mul(2)?)?,
        );
        if ph < self.kh || pw < self.kw || self.pad >= self.kh.max(self.kw) {
            return None;
        }
        self.input_len()?;
        self.output_len()?;
        self.weight_len()?;
        Some(())
    }

    /// Output height: `(in_h + 2·pad − kh) / stride + 1`.
    pub fn out_h(&self) -> usize {
        self.in_h
            .saturating_add(self.pad.saturating_mul(2))
            .saturating_sub(self.kh)
            / self.stride.max(1)
            + 1
    }

    /// Output width: `(in_w + 2·pad − kw) / stride + 1`.
    pub fn out_w(&self) -> usize {
        self.in_w
            .saturating_add(self.pad.saturating_mul(2))
            .saturating_sub(self.kw)
            / self.stride.max(1)
            + 1
    }

    /// Taps per output value: `in_c · kh · kw`.
    pub fn taps(&self) -> Option<usize> {
        self.in_c.checked_mul(self.kh)?.checked_mul(self.kw)
    }

    pub fn input_len(&self) -> Option<usize> {
        self.in_c.checked_mul(self.in_h)?.checked_mul(self.in_w)
    }

    pub fn output_len(&self) -> Option<usize> {
        self.out_c
            .checked_mul(self.out_h())?
            .checked_mul(self.out_w())
    }

    pub fn weight_len(&self) -> Option<usize> {
        self.taps()?.checked_mul(self.out_c)
    }
}

/// The shape of a pooling layer (no padding; windows lie inside the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeom {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// Window size (square).
    pub k: usize,
    pub stride: usize,
}

impl PoolGeom {
    /// The shape with sizes `[c, h, w, k, stride]` (the blob's order,
    /// [`Self::dims`]); unchecked.
    pub const fn new(dims: [usize; 5]) -> Self {
        let [c, h, w, k, stride] = dims;
        PoolGeom { c, h, w, k, stride }
    }

    /// The sizes in [`Self::new`]'s order.
    pub const fn dims(&self) -> [usize; 5] {
        [self.c, self.h, self.w, self.k, self.stride]
    }

    /// `Some` when every size is positive, the window fits, and no length
    /// overflows.
    pub fn check(&self) -> Option<()> {
        if [self.c, self.h, self.w, self.k, self.stride].contains(&0)
            || self.k > self.h
            || self.k > self.w
        {
            return None;
        }
        self.input_len()?;
        Some(())
    }

    /// `(h − k) / stride + 1`.
    pub fn out_h(&self) -> usize {
        self.h.saturating_sub(self.k) / self.stride.max(1) + 1
    }

    /// `(w − k) / stride + 1`.
    pub fn out_w(&self) -> usize {
        self.w.saturating_sub(self.k) / self.stride.max(1) + 1
    }

    pub fn input_len(&self) -> Option<usize> {
        self.c.checked_mul(self.h)?.checked_mul(self.w)
    }

    pub fn output_len(&self) -> usize {
        self.c
            .saturating_mul(self.out_h())
            .saturating_mul(self.out_w())
    }
}

/// Max or average pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Avg,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_round_trip() {
        let d = [3, 7, 5, 21, 3, 2, 2, 1];
        assert_eq!(ConvGeom::new(d).dims(), d);
        assert_eq!(PoolGeom::new([2, 9, 17, 2, 2]).dims(), [2, 9, 17, 2, 2]);
    }

    #[test]
    fn geometry_checks() {
        let g = ConvGeom::new([1, 3, 3, 1, 4, 4, 1, 0]);
        assert!(g.check().is_none());
        assert!(ConvGeom::new([1, 3, 3, 1, 3, 3, 0, 0]).check().is_none());
        assert!(
            ConvGeom::new([usize::MAX, 3, 3, 1, 3, 3, 1, 0])
                .check()
                .is_none()
        );
        assert!(PoolGeom::new([1, 1, 4, 2, 2]).check().is_none());
    }
}
