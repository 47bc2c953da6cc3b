//! The shapes of the image layers: [`ConvGeom`] for 2-D convolution,
//! [`PoolGeom`] for pooling, and [`PoolKind`].
//!
//! Each shape is built from its sizes in one order — the order the model
//! blob stores them in ([`ConvGeom::new`], [`PoolGeom::new`]) — and checked
//! once by its `check`, on which the kernels' index arithmetic rests.

/// The shape of a 2-D convolution layer.
///
/// Beyond the plain geometry (one stride, the same zero padding on every
/// side), MobileNet-class models need:
/// - **asymmetric padding** — TensorFlow's SAME puts the odd row and column
///   at the bottom and right (ONNX `auto_pad = SAME_UPPER`);
/// - **dilation** — taps `dilation` apart, in both axes;
/// - **groups** — input and output channels split into `groups` equal
///   runs, output channel run `i` reading only input run `i`. Depthwise
///   convolution is `groups == in_c == out_c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    pub in_c: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_c: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    /// Zero rows above the input.
    pub pad_top: usize,
    /// Zero columns left of the input.
    pub pad_left: usize,
    /// Zero rows below the input.
    pub pad_bottom: usize,
    /// Zero columns right of the input.
    pub pad_right: usize,
    /// The distance between neighbouring taps (1: adjacent).
    pub dilation: usize,
    /// Channel groups: `in_c / groups` inputs feed each of `out_c / groups`
    /// outputs of a group.
    pub groups: usize,
}

impl ConvGeom {
    /// The plain shape with sizes `[in_c, in_h, in_w, out_c, kh, kw, stride,
    /// pad]` (the blob's order for op 10, [`Self::dims`]): `pad` on every
    /// side, no dilation, one group; unchecked.
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
            pad_top: pad,
            pad_left: pad,
            pad_bottom: pad,
            pad_right: pad,
            dilation: 1,
            groups: 1,
        }
    }

    /// This shape with the padding `[top, left, bottom, right]`.
    pub const fn with_pads(self, pads: [usize; 4]) -> Self {
        let [pad_top, pad_left, pad_bottom, pad_right] = pads;
        ConvGeom {
            pad_top,
            pad_left,
            pad_bottom,
            pad_right,
            ..self
        }
    }

    /// This shape with taps `dilation` apart.
    pub const fn with_dilation(self, dilation: usize) -> Self {
        ConvGeom { dilation, ..self }
    }

    /// This shape with `groups` channel groups.
    pub const fn with_groups(self, groups: usize) -> Self {
        ConvGeom { groups, ..self }
    }

    /// The plain sizes in [`Self::new`]'s order — meaningful when
    /// [`Self::plain_pad`] is `Some` (the top padding stands for all four).
    pub const fn dims(&self) -> [usize; 8] {
        [
            self.in_c,
            self.in_h,
            self.in_w,
            self.out_c,
            self.kh,
            self.kw,
            self.stride,
            self.pad_top,
        ]
    }

    /// Every size: [`Self::dims`] with the four paddings (top, left,
    /// bottom, right) in place of one, then dilation and groups — the
    /// blob's order for op 13 ([`Self::from_full`]).
    pub const fn full_dims(&self) -> [usize; 13] {
        [
            self.in_c,
            self.in_h,
            self.in_w,
            self.out_c,
            self.kh,
            self.kw,
            self.stride,
            self.pad_top,
            self.pad_left,
            self.pad_bottom,
            self.pad_right,
            self.dilation,
            self.groups,
        ]
    }

    /// The inverse of [`Self::full_dims`]; unchecked.
    pub const fn from_full(d: [usize; 13]) -> Self {
        ConvGeom::new([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
            .with_pads([d[7], d[8], d[9], d[10]])
            .with_dilation(d[11])
            .with_groups(d[12])
    }

    /// The padding of a plain shape — the same on every side, no dilation,
    /// one group — which every kernel runs; `None` for the shapes only the
    /// f32 convolution runs.
    pub fn plain_pad(&self) -> Option<usize> {
        let p = self.pad_top;
        let same = [self.pad_left, self.pad_bottom, self.pad_right] == [p; 3];
        (same && self.dilation == 1 && self.groups == 1).then_some(p)
    }

    /// Whether every group has one input and one output channel.
    pub fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.in_c && self.groups == self.out_c
    }

    /// `Some` when every size is positive, the groups divide the channels,
    /// the padded input holds the (dilated) kernel, no padding reaches a
    /// whole kernel extent on both axes, and no length overflows.
    pub fn check(&self) -> Option<()> {
        let all = [
            self.in_c,
            self.in_h,
            self.in_w,
            self.out_c,
            self.kh,
            self.kw,
            self.stride,
            self.dilation,
            self.groups,
        ];
        if all.contains(&0)
            || !self.in_c.is_multiple_of(self.groups)
            || !self.out_c.is_multiple_of(self.groups)
        {
            return None;
        }
        let (eh, ew) = (self.extent_h()?, self.extent_w()?);
        let ph = self
            .in_h
            .checked_add(self.pad_top)?
            .checked_add(self.pad_bottom)?;
        let pw = self
            .in_w
            .checked_add(self.pad_left)?
            .checked_add(self.pad_right)?;
        // A window may lie wholly in the padding along one axis (a 1×7
        // kernel with padding 3 keeps its rows' zeros) but not both.
        let pads = [self.pad_top, self.pad_left, self.pad_bottom, self.pad_right];
        if ph < eh || pw < ew || pads.into_iter().max()? >= eh.max(ew) {
            return None;
        }
        self.input_len()?;
        self.output_len()?;
        self.weight_len()?;
        Some(())
    }

    /// `Some` when [`Self::check`] holds and the shape is plain
    /// ([`Self::plain_pad`]): what the int8 convolution runs.
    pub fn check_plain(&self) -> Option<()> {
        self.check()?;
        self.plain_pad().map(|_| ())
    }

    /// Rows the dilated kernel spans: `dilation·(kh − 1) + 1`.
    pub fn extent_h(&self) -> Option<usize> {
        self.dilation
            .checked_mul(self.kh.checked_sub(1)?)?
            .checked_add(1)
    }

    /// Columns the dilated kernel spans: `dilation·(kw − 1) + 1`.
    pub fn extent_w(&self) -> Option<usize> {
        self.dilation
            .checked_mul(self.kw.checked_sub(1)?)?
            .checked_add(1)
    }

    /// Output height: `(in_h + pad_top + pad_bottom − extent_h) / stride + 1`.
    pub fn out_h(&self) -> usize {
        self.in_h
            .saturating_add(self.pad_top)
            .saturating_add(self.pad_bottom)
            .saturating_sub(self.extent_h().unwrap_or(usize::MAX))
            / self.stride.max(1)
            + 1
    }

    /// Output width: `(in_w + pad_left + pad_right − extent_w) / stride + 1`.
    pub fn out_w(&self) -> usize {
        self.in_w
            .saturating_add(self.pad_left)
            .saturating_add(self.pad_right)
            .saturating_sub(self.extent_w().unwrap_or(usize::MAX))
            / self.stride.max(1)
            + 1
    }

    /// Input channels per group.
    pub fn group_in(&self) -> usize {
        self.in_c / self.groups.max(1)
    }

    /// Output channels per group.
    pub fn group_out(&self) -> usize {
        self.out_c / self.groups.max(1)
    }

    /// The shape one group computes: its channels, one group.
    pub fn group(&self) -> ConvGeom {
        ConvGeom {
            in_c: self.group_in(),
            out_c: self.group_out(),
            groups: 1,
            ..*self
        }
    }

    /// Taps per output value: `(in_c / groups) · kh · kw`.
    pub fn taps(&self) -> Option<usize> {
        self.group_in().checked_mul(self.kh)?.checked_mul(self.kw)
    }

    pub fn input_len(&self) -> Option<usize> {
        self.in_c.checked_mul(self.in_h)?.checked_mul(self.in_w)
    }

    pub fn output_len(&self) -> Option<usize> {
        self.out_c
            .checked_mul(self.out_h())?
            .checked_mul(self.out_w())
    }

    /// Weights: `taps · out_c` (each group's `taps × out_c / groups`).
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

    #[test]
    fn full_geometry() {
        let d = [4, 7, 9, 8, 3, 3, 2, 0, 1, 1, 0, 2, 4];
        let g = ConvGeom::from_full(d);
        assert_eq!(g.full_dims(), d);
        assert_eq!(g.check(), Some(()));
        assert_eq!(g.plain_pad(), None);
        assert_eq!((g.extent_h(), g.out_h(), g.out_w()), (Some(5), 2, 3));
        assert_eq!((g.taps(), g.weight_len()), (Some(9), Some(72)));
        assert_eq!(g.group().full_dims()[..4], [1, 7, 9, 2]);
        assert!(!g.is_depthwise() && g.with_groups(8).check().is_none());
        assert!(
            ConvGeom::new([3, 5, 5, 3, 3, 3, 1, 1])
                .with_groups(3)
                .is_depthwise()
        );
        // SAME_UPPER at stride 2 on an even input: the odd pad goes last.
        let same = ConvGeom::new([2, 8, 8, 2, 3, 3, 2, 0]).with_pads([0, 0, 1, 1]);
        assert_eq!((same.out_h(), same.out_w()), (4, 4));
        assert_eq!(ConvGeom::new([1, 3, 3, 1, 3, 3, 1, 1]).plain_pad(), Some(1));
        // A dilated kernel must fit; a padding reaching the extent on both
        // axes, a zero dilation or groups that do not divide are refused.
        assert!(
            ConvGeom::new([1, 4, 4, 1, 3, 3, 1, 0])
                .with_dilation(2)
                .check()
                .is_none()
        );
        assert!(
            ConvGeom::new([1, 4, 4, 1, 3, 3, 1, 0])
                .with_pads([0, 0, 3, 0])
                .check()
                .is_none()
        );
        assert!(
            ConvGeom::new([1, 4, 4, 1, 3, 3, 1, 0])
                .with_dilation(0)
                .check()
                .is_none()
        );
        assert!(
            ConvGeom::new([3, 4, 4, 2, 1, 1, 1, 0])
                .with_groups(2)
                .check()
                .is_none()
        );
        let huge = ConvGeom::new([1, 4, 4, 1, 3, 3, 1, 0]).with_dilation(usize::MAX);
        assert!(huge.check().is_none());
    }
}
