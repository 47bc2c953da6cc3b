//! `Conv2D`, `DepthwiseConv2D`, `SeparableConv2D`, `ZeroPadding2D`,
//! `MaxPooling2D`, `AveragePooling2D` and `GlobalAveragePooling2D` over
//! channels-last images, onto kiln's `conv2d` (strides, dilation, groups,
//! TensorFlow's SAME padding with the odd row and column last, a
//! `ZeroPadding2D` before it folded into its padding), `max_pool`,
//! `avg_pool` and `global_avg_pool`, which hold the image as channel
//! planes: the kernel is transposed from Keras's `[kh, kw, in, out]` to
//! `[out, in, kh, kw]`. A channels-last image that reaches an image layer
//! in Keras's order (an RGB model input, a `Reshape` of a dense output) is
//! transposed to planes by a one-hot 1×C convolution over its `[1, h·w,
//! C]` view, whose output `[C, h·w, 1]` is reshaped to `[C, h, w]`: exact
//! for finite values (each output is one input times 1 plus zeros).

use ndarray::ArrayD;
use serde_json::Value;

use super::KerasError;
use super::state::{Lowering, Op, Order};

/// A window's geometry on one axis pair.
struct Window {
    kernel: [usize; 2],
    stride: usize,
    dilation: usize,
    /// Top, left, bottom, right.
    pads: [usize; 4],
    out: [usize; 2],
}

impl Lowering<'_> {
    /// A `[n, n]` pair (or a lone `n`) from the config.
    fn pair(&self, name: &str) -> Result<Option<[usize; 2]>, KerasError> {
        let v = match self.layer.config.get(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(v) => v,
        };
        let get = |v: &Value| {
            v.as_u64()
                .and_then(|v| usize::try_from(v).ok())
                .filter(|&v| v > 0)
        };
        let pair = match v {
            Value::Array(a) if a.len() == 2 => get(&a[0]).zip(get(&a[1])).map(|(x, y)| [x, y]),
            v => get(v).map(|x| [x, x]),
        };
        pair.map(Some)
            .ok_or_else(|| self.err(format!("`{name}` = {v} is not a pair of positive integers")))
    }

    /// The image `[h, w, c]` the current value is (a pending zero padding
    /// included), its kiln tensor made `[c, h, w]` channel planes.
    fn image(&mut self) -> Result<[usize; 3], KerasError> {
        self.only("data_format", &[Value::from("channels_last")])?;
        let &[h, w, c] = self.keras.as_slice() else {
            return Err(self.err(format!(
                "rows of shape {:?}: kiln's 2-D layers read [height, width, channels] images",
                self.keras
            )));
        };
        let [top, left, bottom, right] = self.pads;
        let (ih, iw) = (
            h.saturating_sub(top + bottom),
            w.saturating_sub(left + right),
        );
        match self.order {
            Order::Planes {
                h: ph,
                w: pw,
                c: pc,
            } if [ph, pw, pc] == [ih, iw, c] => {
                if self.kiln != [c, ih, iw] {
                    self.push(Op::Reshape(vec![c, ih, iw]));
                }
            }
            Order::Plain if c == 1 && self.elementwise => {
                // One channel: row-major [h, w, 1] is the single plane,
                // and only element-wise ops read the input before.
                self.input_dims = vec![1, ih, iw];
                self.kiln = vec![1, ih, iw];
                self.order = Order::Planes { h: ih, w: iw, c };
            }
            Order::Plain => self.transpose_to_planes(ih, iw, c),
            Order::Planes { .. } => {
                return Err(self.err(format!(
                    "its input is a {h}×{w}×{c} image kiln holds in another layout"
                )));
            }
        }
        Ok([h, w, c])
    }

    /// Transposes the current channels-last `[h, w, c]` value to planes.
    fn transpose_to_planes(&mut self, h: usize, w: usize, c: usize) {
        if c == 1 {
            self.push(Op::Reshape(vec![1, h, w]));
        } else {
            self.push(Op::Reshape(vec![1, h * w, c]));
            let weight = (0..c * c)
                .map(|i| if i / c == i % c { 1.0 } else { 0.0 })
                .collect();
            self.push(Op::Conv {
                weight,
                shape: [c, 1, 1, c],
                bias: vec![0.0; c],
                stride: 1,
                pads: [0; 4],
                dilation: 1,
                groups: 1,
            });
            self.push(Op::Reshape(vec![c, h, w]));
        }
        self.order = Order::Planes { h, w, c };
    }

    /// The window of a conv or pool over an `[h, w]` input.
    fn window(
        &self,
        hw: [usize; 2],
        kernel: [usize; 2],
        strides: [usize; 2],
        dilation: [usize; 2],
    ) -> Result<Window, KerasError> {
        if strides[0] != strides[1] {
            return Err(self.err(format!(
                "`strides` = {strides:?}: kiln uses one stride for both axes"
            )));
        }
        if dilation[0] != dilation[1] {
            return Err(self.err(format!(
                "`dilation_rate` = {dilation:?}: kiln dilates both axes equally"
            )));
        }
        let (stride, dilation) = (strides[0], dilation[0]);
        if stride > 1 && dilation > 1 {
            return Err(self.err("strides and dilation_rate both above 1 (Keras refuses this too)"));
        }
        let padding = self.field("padding")?.as_str().unwrap_or("");
        let extent = |d: usize| {
            dilation
                .checked_mul(kernel[d] - 1)
                .and_then(|e| e.checked_add(1))
                .unwrap_or(usize::MAX)
        };
        let mut pads = [0; 4];
        let mut out = [0; 2];
        for d in 0..2 {
            match padding {
                "valid" => {
                    if hw[d] < extent(d) {
                        return Err(self.err(format!(
                            "its {}×{} window does not fit the {}×{} input",
                            kernel[0], kernel[1], hw[0], hw[1]
                        )));
                    }
                    out[d] = (hw[d] - extent(d)) / stride + 1;
                }
                "same" => {
                    // TensorFlow and XLA: the odd padding goes last.
                    out[d] = hw[d].div_ceil(stride);
                    let total = ((out[d] - 1) * stride + extent(d)).saturating_sub(hw[d]);
                    pads[d] = total / 2;
                    pads[d + 2] = total - total / 2;
                }
                other => {
                    return Err(self.err(format!(
                        "`padding` = {other:?} is not supported (valid or same)"
                    )));
                }
            }
        }
        Ok(Window {
            kernel,
            stride,
            dilation,
            pads,
            out,
        })
    }

    /// A layer's saved `kernel` (`what` in the error) and, with `use_bias`,
    /// its bias.
    fn kernel_and_bias<'w>(
        &self,
        w: &'w [ArrayD<f32>],
        what: &str,
    ) -> Result<(&'w ArrayD<f32>, Option<&'w ArrayD<f32>>), KerasError> {
        match (w, self.bool_field("use_bias", true)?) {
            ([k, b], true) => Ok((k, Some(b))),
            ([k], false) => Ok((k, None)),
            _ => Err(self.err(format!(
                "{} weights saved, expected {what} and bias",
                w.len()
            ))),
        }
    }

    pub(super) fn conv(&mut self, w: &[ArrayD<f32>]) -> Result<(), KerasError> {
        let (k, bias) = self.kernel_and_bias(w, "kernel")?;
        let filters = self.usize_field("filters")?;
        let groups = match self.layer.config.get("groups") {
            None | Some(Value::Null) => 1,
            Some(_) => self.usize_field("groups")?,
        };
        self.conv_with(k, bias, filters, groups, 1)?;
        let act = self.layer.config.get("activation").cloned();
        self.activation(&act.unwrap_or(Value::from("linear")))
    }

    /// `DepthwiseConv2D`: `depth_multiplier` outputs per channel, output
    /// `c · m + j` reading channel `c`.
    pub(super) fn depthwise(&mut self, w: &[ArrayD<f32>]) -> Result<(), KerasError> {
        let (k, bias) = self.kernel_and_bias(w, "the depthwise kernel")?;
        let m = self.usize_field("depth_multiplier")?;
        let c = self.keras.last().copied().unwrap_or(0);
        self.conv_with(k, bias, c * m, c, m)?;
        let act = self.layer.config.get("activation").cloned();
        self.activation(&act.unwrap_or(Value::from("linear")))
    }

    /// `SeparableConv2D`: a depthwise convolution, then a pointwise one
    /// (with the bias).
    pub(super) fn separable(&mut self, w: &[ArrayD<f32>]) -> Result<(), KerasError> {
        let use_bias = self.bool_field("use_bias", true)?;
        let (dk, pk, bias) = match (w, use_bias) {
            ([d, p, b], true) => (d, p, Some(b)),
            ([d, p], false) => (d, p, None),
            _ => {
                return Err(self.err(format!(
                    "{} weights saved, expected the depthwise and pointwise kernels and bias",
                    w.len()
                )));
            }
        };
        let m = self.usize_field("depth_multiplier")?;
        let filters = self.usize_field("filters")?;
        let c = self.keras.last().copied().unwrap_or(0);
        self.conv_with(dk, None, c * m, c, m)?;
        self.pointwise(pk, bias, filters)?;
        let act = self.layer.config.get("activation").cloned();
        self.activation(&act.unwrap_or(Value::from("linear")))
    }

    /// A 1×1 convolution with stride 1 over the current image.
    fn pointwise(
        &mut self,
        k: &ArrayD<f32>,
        bias: Option<&ArrayD<f32>>,
        filters: usize,
    ) -> Result<(), KerasError> {
        let [h, w, c] = self.image()?;
        if k.shape() != [1, 1, c, filters] {
            return Err(self.err(format!(
                "pointwise kernel of shape {:?}; expected [1, 1, {c}, {filters}]",
                k.shape()
            )));
        }
        let bias = self.bias(bias, filters)?;
        let weight = (0..filters)
            .flat_map(|o| (0..c).map(move |i| k[[0, 0, i, o]]))
            .collect();
        self.push(Op::Conv {
            weight,
            shape: [filters, c, 1, 1],
            bias,
            stride: 1,
            pads: [0; 4],
            dilation: 1,
            groups: 1,
        });
        self.set_image([h, w], filters);
        Ok(())
    }

    fn bias(&self, b: Option<&ArrayD<f32>>, n: usize) -> Result<Vec<f32>, KerasError> {
        let bias: Vec<f32> = b.map_or(vec![0.0; n], |b| b.iter().copied().collect());
        if bias.len() != n {
            return Err(self.err(format!("bias of {} values; expected {n}", bias.len())));
        }
        Ok(bias)
    }

    /// A convolution of `filters` outputs in `groups` groups with Keras
    /// kernel `k` (`[kh, kw, in / groups, out]`, or a depthwise kernel
    /// `[kh, kw, in, multiplier]` when `multiplier` > 1 or groups = in):
    /// its window from the config, a pending zero padding folded in. A
    /// 1×1 kernel over a 1×1 image (a squeeze-and-excitation block) is a
    /// dense layer.
    fn conv_with(
        &mut self,
        k: &ArrayD<f32>,
        bias: Option<&ArrayD<f32>>,
        filters: usize,
        groups: usize,
        multiplier: usize,
    ) -> Result<(), KerasError> {
        let kernel = self
            .pair("kernel_size")?
            .ok_or_else(|| self.err("its config has no `kernel_size`"))?;
        let strides = self.pair("strides")?.unwrap_or([1, 1]);
        let dilation = self.pair("dilation_rate")?.unwrap_or([1, 1]);
        let depthwise = self.layer.class != "Conv2D" && self.layer.class != "Convolution2D";
        let &[h, wd, c] = self.keras.as_slice() else {
            return Err(self.err(format!(
                "rows of shape {:?}: kiln's 2-D layers read [height, width, channels] images",
                self.keras
            )));
        };
        if groups == 0 || !c.is_multiple_of(groups) || !filters.is_multiple_of(groups) {
            return Err(self.err(format!("`groups` = {groups} does not divide the channels")));
        }
        let per = c / groups;
        let [kh, kw] = kernel;
        let expected = if depthwise {
            [kh, kw, c, multiplier]
        } else {
            [kh, kw, per, filters]
        };
        if k.shape() != expected {
            return Err(self.err(format!(
                "kernel of shape {:?}; expected {expected:?}",
                k.shape()
            )));
        }
        let bias = self.bias(bias, filters)?;
        // Keras's [kh, kw, in, out] (or [kh, kw, in, multiplier]) → kiln's
        // [out, in / groups, kh, kw].
        let tap = |o: usize, i: usize, y: usize, x: usize| {
            if depthwise {
                k[[y, x, o / multiplier, o % multiplier]]
            } else {
                k[[y, x, i, o]]
            }
        };
        if [h, wd, kh, kw] == [1, 1, 1, 1] && self.pads == [0; 4] && groups == 1 {
            let weight = ndarray::Array2::from_shape_fn((filters, c), |(o, i)| tap(o, i, 0, 0));
            self.push(Op::Dense { weight, bias });
            self.keras = vec![1, 1, filters];
            self.order = Order::Planes {
                h: 1,
                w: 1,
                c: filters,
            };
            self.kiln = vec![filters];
            return Ok(());
        }
        self.image()?;
        let mut win = self.window([h, wd], kernel, strides, dilation)?;
        for (p, z) in win.pads.iter_mut().zip(self.pads) {
            *p += z;
        }
        self.pads = [0; 4];
        let mut weight = Vec::with_capacity(k.len());
        for o in 0..filters {
            for i in 0..per {
                for y in 0..kh {
                    for x in 0..kw {
                        weight.push(tap(o, i, y, x));
                    }
                }
            }
        }
        self.push(Op::Conv {
            weight,
            shape: [filters, per, kh, kw],
            bias,
            stride: win.stride,
            pads: win.pads,
            dilation: win.dilation,
            groups,
        });
        self.set_image(win.out, filters);
        Ok(())
    }

    /// `ZeroPadding2D`: zeros the next convolution adds as its padding.
    pub(super) fn zero_padding(&mut self) -> Result<(), KerasError> {
        self.only("data_format", &[Value::from("channels_last")])?;
        let &[h, w, c] = self.keras.as_slice() else {
            return Err(self.err(format!("rows of shape {:?} are not an image", self.keras)));
        };
        let v = self.field("padding")?.clone();
        let n = |v: &Value| v.as_u64().and_then(|v| usize::try_from(v).ok());
        let pads = match &v {
            Value::Array(a) => match a.as_slice() {
                [Value::Array(y), Value::Array(x)] => match (y.as_slice(), x.as_slice()) {
                    ([t, b], [l, r]) => n(t)
                        .zip(n(l))
                        .zip(n(b).zip(n(r)))
                        .map(|((t, l), (b, r))| [t, l, b, r]),
                    _ => None,
                },
                [y, x] => n(y).zip(n(x)).map(|(y, x)| [y, x, y, x]),
                _ => None,
            },
            v => n(v).map(|p| [p; 4]),
        };
        let pads = pads
            .filter(|p| p.iter().all(|&p| p <= 1 << 16))
            .ok_or_else(|| {
                self.err(format!(
                    "`padding` = {v} is not ((top, bottom), (left, right))"
                ))
            })?;
        for (p, z) in self.pads.iter_mut().zip(pads) {
            *p += z;
        }
        self.keras = vec![h + pads[0] + pads[2], w + pads[1] + pads[3], c];
        Ok(())
    }

    fn set_image(&mut self, [h, w]: [usize; 2], c: usize) {
        self.keras = vec![h, w, c];
        self.kiln = vec![c, h, w];
        self.order = Order::Planes { h, w, c };
    }

    pub(super) fn pool(&mut self) -> Result<(), KerasError> {
        let [h, w, c] = self.image()?;
        let kernel = self.pair("pool_size")?.unwrap_or([2, 2]);
        let strides = self.pair("strides")?.unwrap_or(kernel);
        let win = self.window([h, w], kernel, strides, [1, 1])?;
        if kernel[0] != kernel[1] {
            return Err(self.err(format!(
                "`pool_size` = {kernel:?}: kiln pools square windows"
            )));
        }
        if win.pads != [0; 4] {
            return Err(self.err(format!(
                "padding=\"same\" adds {:?} (top, left, bottom, right) here; kiln pools \
                 without padding (use padding=\"valid\", or an input size the stride divides)",
                win.pads
            )));
        }
        let max = self.layer.class.starts_with("Max");
        self.push(Op::Pool {
            max,
            kernel: win.kernel[0],
            stride: win.stride,
        });
        self.set_image(win.out, c);
        Ok(())
    }

    pub(super) fn global_pool(&mut self) -> Result<(), KerasError> {
        let [_, _, c] = self.image()?;
        let keep = self.bool_field("keepdims", false)?;
        self.push(Op::GlobalAvgPool { channels: c });
        self.kiln = vec![c];
        if keep {
            self.keras = vec![1, 1, c];
            self.order = Order::Planes { h: 1, w: 1, c };
        } else {
            self.keras = vec![c];
            self.order = Order::Plain;
        }
        Ok(())
    }
}
