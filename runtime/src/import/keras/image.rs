//! `Conv2D`, `MaxPooling2D`, `AveragePooling2D` and
//! `GlobalAveragePooling2D` over channels-last images, onto kiln's
//! `conv2d` (strides, dilation, groups, TensorFlow's SAME padding with the
//! odd row and column last), `max_pool`, `avg_pool` and
//! `global_avg_pool`, which hold the image as channel planes: the kernel
//! is transposed from Keras's `[kh, kw, in, out]` to `[out, in, kh, kw]`.

use ndarray::ArrayD;
use serde_json::Value;

use super::KerasError;
use super::lower::{Lowering, Op, Order};

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

    /// The image `[h, w, c]` the current value is, in kiln's planes.
    fn image(&mut self) -> Result<[usize; 3], KerasError> {
        self.only("data_format", &[Value::from("channels_last")])?;
        let &[h, w, c] = self.keras.as_slice() else {
            return Err(self.err(format!(
                "rows of shape {:?}: kiln's 2-D layers read [height, width, channels] images",
                self.keras
            )));
        };
        match self.order {
            Order::Planes {
                h: ph,
                w: pw,
                c: pc,
            } if [ph, pw, pc] == [h, w, c] => {}
            Order::Plain if c == 1 && (self.kiln == [1, h, w] || self.elementwise) => {
                // One channel: row-major [h, w, 1] is the single plane.
                self.input_dims = vec![1, h, w];
                self.kiln = vec![1, h, w];
                self.order = Order::Planes { h, w, c };
            }
            Order::Plain if self.elementwise => {
                return Err(self.err(format!(
                    "the input is a {h}×{w} image of {c} channels, channels-last; kiln's image \
                     layers read channel planes and kiln has no transpose layer yet, so only \
                     single-channel image inputs are supported"
                )));
            }
            _ => {
                return Err(self.err(format!(
                    "its input was reshaped into a {h}×{w}×{c} image after other layers; kiln's \
                     image layers need the image the model input or a convolution gives"
                )));
            }
        }
        Ok([h, w, c])
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

    pub(super) fn conv(&mut self, w: &[ArrayD<f32>]) -> Result<(), KerasError> {
        let [h, wd, c] = self.image()?;
        let filters = self.usize_field("filters")?;
        let kernel = self
            .pair("kernel_size")?
            .ok_or_else(|| self.err("its config has no `kernel_size`"))?;
        let strides = self.pair("strides")?.unwrap_or([1, 1]);
        let dilation = self.pair("dilation_rate")?.unwrap_or([1, 1]);
        let groups = match self.layer.config.get("groups") {
            None | Some(Value::Null) => 1,
            Some(_) => self.usize_field("groups")?,
        };
        if !c.is_multiple_of(groups) || !filters.is_multiple_of(groups) {
            return Err(self.err(format!("`groups` = {groups} does not divide the channels")));
        }
        let use_bias = self.bool_field("use_bias", true)?;
        let win = self.window([h, wd], kernel, strides, dilation)?;
        let per = c / groups;
        let (k, bias) = match (w, use_bias) {
            ([k, b], true) => (k, b.iter().copied().collect::<Vec<f32>>()),
            ([k], false) => (k, vec![0.0; filters]),
            _ => {
                return Err(self.err(format!(
                    "{} weights saved, expected kernel and bias",
                    w.len()
                )));
            }
        };
        let [kh, kw] = kernel;
        if k.shape() != [kh, kw, per, filters] || bias.len() != filters {
            return Err(self.err(format!(
                "kernel of shape {:?} and bias of {} values; expected [{kh}, {kw}, {per}, \
                 {filters}] and {filters}",
                k.shape(),
                bias.len()
            )));
        }
        // [kh, kw, in, out] → [out, in, kh, kw].
        let mut weight = Vec::with_capacity(k.len());
        for o in 0..filters {
            for i in 0..per {
                for y in 0..kh {
                    for x in 0..kw {
                        weight.push(k[[y, x, i, o]]);
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
        let act = self.layer.config.get("activation").cloned();
        self.activation(&act.unwrap_or(Value::from("linear")))
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
        self.keras = if keep { vec![1, 1, c] } else { vec![c] };
        self.kiln = vec![c];
        self.order = Order::Plain;
        Ok(())
    }
}
