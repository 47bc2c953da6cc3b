//! `Conv`, `MaxPool` and `AveragePool`: the sliding-window geometry read
//! from a node's attributes (kernel, strides, dilations, explicit `pads` or
//! `auto_pad`, `ceil_mode`), checked, and mapped onto kiln's `conv2d`
//! (groups, dilation and uneven pads included; a `Pad` before it folded
//! in), `max_pool` and `avg_pool` layers.

use super::super::proto::NodeProto;
use super::super::tensor::Attrs;
use super::super::{ImportError, NodeRef};
use super::{Lowering, Op};

/// A 2-D window over `[C, H, W]` rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Window {
    pub(super) kernel: [usize; 2],
    pub(super) strides: [usize; 2],
    pub(super) dilations: [usize; 2],
    /// Top, left, bottom, right.
    pub(super) pads: [usize; 4],
    /// The output's `[H, W]`.
    pub(super) out: [usize; 2],
}

/// Reads the window attributes of a 2-D op over an input of `[H, W]`.
/// `kernel` comes from the weight (Conv) or `kernel_shape` (pools, which
/// may also set `ceil_mode`).
pub(super) fn window(
    r: &NodeRef,
    a: &mut Attrs<'_>,
    input: [usize; 2],
    kernel: Option<[usize; 2]>,
) -> Result<Window, ImportError> {
    let pair = |a: &mut Attrs<'_>, name: &str, default: usize| -> Result<[usize; 2], ImportError> {
        match a.ints(name)? {
            None => Ok([default; 2]),
            Some(v) => match v.as_slice() {
                &[x, y] if x >= 1 && y >= 1 => Ok([x as usize, y as usize]),
                _ => Err(a.unsupported(name, format!("{v:?} (kiln needs two positive values)"))),
            },
        }
    };
    let shape = pair(a, "kernel_shape", 0)?;
    let kernel = match kernel {
        Some(k) if shape != [0, 0] && shape != k => {
            return Err(r.err(format!(
                "attribute `kernel_shape` = {shape:?} disagrees with the weight's {k:?}"
            )));
        }
        Some(k) => k,
        None if shape == [0, 0] => return Err(r.err("needs a 2-D `kernel_shape`")),
        None => shape,
    };
    let strides = pair(a, "strides", 1)?;
    let dilations = pair(a, "dilations", 1)?;
    let ceil = a.int("ceil_mode", 0)?;
    if !(0..=1).contains(&ceil) {
        return Err(a.unsupported("ceil_mode", ceil));
    }
    let auto_pad = a.string("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
    let pads = a.ints("pads")?;
    let extent = |d: usize| dilations[d] * (kernel[d] - 1) + 1;
    let pads: [usize; 4] = match (auto_pad.as_str(), pads) {
        ("NOTSET", None) | ("VALID", None) => [0; 4],
        ("NOTSET", Some(p)) => match p.as_slice() {
            &[t, l, b, rr] if p.iter().all(|&v| v >= 0) => {
                [t as usize, l as usize, b as usize, rr as usize]
            }
            _ => return Err(a.unsupported("pads", format!("{p:?}"))),
        },
        (mode @ ("SAME_UPPER" | "SAME_LOWER"), None) => {
            let mut pads = [0; 4];
            for d in 0..2 {
                let out = input[d].div_ceil(strides[d]);
                let total = ((out - 1) * strides[d] + extent(d)).saturating_sub(input[d]);
                let small = total / 2;
                let (begin, end) = if mode == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                };
                pads[d] = begin;
                pads[d + 2] = end;
            }
            pads
        }
        (mode, _) => return Err(a.unsupported("auto_pad", format!("{mode:?}"))),
    };
    let mut out = [0; 2];
    for d in 0..2 {
        let span = input[d] + pads[d] + pads[d + 2];
        if span < extent(d) {
            return Err(r.err(format!(
                "the {}×{} window (dilated) does not fit the padded {}×{} input",
                kernel[0], kernel[1], input[0], input[1]
            )));
        }
        let steps = span - extent(d);
        out[d] = if ceil == 1 {
            let o = steps.div_ceil(strides[d]) + 1;
            // The last window must start inside the input or left padding.
            if (o - 1) * strides[d] >= input[d] + pads[d] {
                o - 1
            } else {
                o
            }
        } else {
            steps / strides[d] + 1
        };
    }
    Ok(Window {
        kernel,
        strides,
        dilations,
        pads,
        out,
    })
}

impl<'g> Lowering<'g> {
    /// `Conv`, `MaxPool`, `AveragePool` over `[C, H, W]` rows, onto kiln's
    /// `conv2d` (one stride and one dilation for both axes, any padding,
    /// any groups — depthwise when `group` is the channel count) and
    /// `max_pool`/`avg_pool` (square windows, no padding).
    pub(super) fn windowed(
        &mut self,
        r: &NodeRef,
        n: &'g NodeProto,
        a: &mut Attrs<'_>,
    ) -> Result<(), ImportError> {
        let conv = n.op_type == "Conv";
        let (x, folded) = if conv {
            self.conv_input(r, n)?
        } else {
            (self.act(r, n, 0)?, [0; 4])
        };
        let &[channels, h, w] = x.dims.as_slice() else {
            return Err(r.err(format!(
                "rows of shape {:?}: kiln supports 2-D windows over [C, H, W] only",
                x.dims
            )));
        };
        let mut filters = None;
        let kernel = if conv {
            let weight = self.const_f32(r, n, 1)?;
            let &[out, per_group, kh, kw] = weight.shape() else {
                return Err(r.err(format!("weight of shape {:?} is not 4-D", weight.shape())));
            };
            let group = a.int("group", 1)?;
            let groups = usize::try_from(group)
                .ok()
                .filter(|&g| g >= 1 && channels % g == 0 && out % g == 0)
                .ok_or_else(|| a.unsupported("group", group))?;
            if per_group * groups != channels {
                return Err(r.err(format!(
                    "weight of shape {:?} does not match {channels} input channels",
                    weight.shape()
                )));
            }
            let bias = match self.input(r, n, 2)? {
                None => vec![0.0; out],
                Some(_) => {
                    let b = self.const_f32(r, n, 2)?;
                    if b.shape() != [out] {
                        return Err(
                            r.err(format!("bias of shape {:?}, expected [{out}]", b.shape()))
                        );
                    }
                    b.into_iter().collect()
                }
            };
            filters = Some((weight, bias, groups));
            Some([kh, kw])
        } else {
            if n.op_type == "MaxPool" {
                let order = a.int("storage_order", 0)?;
                if order != 0 {
                    return Err(a.unsupported("storage_order", order));
                }
            } else {
                a.int("count_include_pad", 0)?;
            }
            None
        };
        if conv && n.attribute.iter().any(|x| x.name == "ceil_mode") {
            return Err(r.err("attribute `ceil_mode` belongs to pooling ops"));
        }
        // A folded Pad's zeros are part of the input the window sees.
        let [ft, fl, fb, fr] = folded;
        let (ph, pw) = (h + ft + fb, w + fl + fr);
        let mut win = window(r, a, [ph, pw], kernel)?;
        for (p, f) in win.pads.iter_mut().zip(folded) {
            *p += f;
        }
        let [t, l, b, rr] = win.pads;
        if win.dilations[0] != win.dilations[1] || (!conv && win.dilations != [1, 1]) {
            return Err(a.unsupported(
                "dilations",
                format!(
                    "{:?} (kiln dilates convolutions equally on both axes)",
                    win.dilations
                ),
            ));
        }
        if win.strides[0] != win.strides[1] {
            return Err(a.unsupported(
                "strides",
                format!("{:?} (kiln uses one stride for both axes)", win.strides),
            ));
        }
        let stride = win.strides[0];
        if !conv && [t, l, b, rr] != [0; 4] {
            return Err(a.unsupported(
                "pads",
                format!("{:?} (kiln pools without padding)", win.pads),
            ));
        }
        if !conv && win.kernel[0] != win.kernel[1] {
            return Err(a.unsupported(
                "kernel_shape",
                format!("{:?} (kiln pools square windows)", win.kernel),
            ));
        }
        // kiln's output size: floor((in + pads − extent) / stride) + 1.
        let extent = |d: usize| win.dilations[0] * (win.kernel[d] - 1) + 1;
        let kiln_out = |d: usize| (([h + t + b, w + l + rr][d] - extent(d)) / stride) + 1;
        if win.out != [kiln_out(0), kiln_out(1)] {
            return Err(a.unsupported(
                "ceil_mode",
                format!("1 (it changes the output to {:?})", win.out),
            ));
        }
        if self.kiln_shapes[x.id] != x.dims {
            if x.id == 0 {
                // A reshape of the input into an image: the model file's
                // input takes that shape.
                self.input_dims = x.dims.clone();
                self.kiln_shapes[0] = x.dims.clone();
            } else if let Some((weight, bias, 1)) = &filters
                && [h, w, stride] == [1, 1, 1]
                && [t, l, b, rr] == [0; 4]
                && win.kernel == [1, 1]
            {
                // A 1×1 convolution of a 1×1 image that kiln holds as a
                // vector (a global average pool's output, a
                // squeeze-and-excitation gate): a dense layer.
                let out = weight.shape()[0];
                let weight = weight
                    .clone()
                    .into_shape_with_order((out, channels))
                    .map_err(|e| r.err(e.to_string()))?;
                let bias = ndarray::Array1::from(bias.clone());
                let v = self.push(Op::Dense { weight, bias }, vec![out, 1, 1]);
                self.set(n, 0, v);
                return Ok(());
            } else {
                return Err(r.err(format!(
                    "its input was reshaped to {:?} after other layers; kiln image layers need the \
                     [C, H, W] shape a convolution, pooling or the model input gives",
                    x.dims
                )));
            }
        }
        let (op, out_c) = match filters {
            Some((weight, bias, groups)) => {
                let out_c = weight.shape()[0];
                (
                    Op::Conv {
                        weight,
                        bias,
                        stride,
                        pads: win.pads,
                        dilation: win.dilations[0],
                        groups,
                    },
                    out_c,
                )
            }
            None => (
                Op::Pool {
                    max: n.op_type == "MaxPool",
                    kernel: win.kernel[0],
                    stride,
                },
                channels,
            ),
        };
        let v = self.push(op, vec![out_c, win.out[0], win.out[1]]);
        self.set(n, 0, v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::onnx::proto::{AttributeProto, attribute_type};

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: attribute_type::INTS,
            ints: v.to_vec(),
            ..Default::default()
        }
    }

    fn int(name: &str, i: i64) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: attribute_type::INT,
            i,
            ..Default::default()
        }
    }

    fn string(name: &str, s: &str) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: attribute_type::STRING,
            s: s.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    fn win(
        attrs: Vec<AttributeProto>,
        input: [usize; 2],
        kernel: Option<[usize; 2]>,
    ) -> Result<Window, ImportError> {
        let r = NodeRef {
            index: 0,
            name: String::new(),
            op: "MaxPool".into(),
        };
        let mut a = Attrs::new(&r, &attrs)?;
        let w = window(&r, &mut a, input, kernel)?;
        a.finish()?;
        Ok(w)
    }

    #[test]
    fn output_sizes_follow_the_onnx_formulas() {
        let w = win(vec![], [7, 5], Some([3, 3])).unwrap();
        assert_eq!((w.out, w.pads), ([5, 3], [0; 4]));
        let w = win(
            vec![ints("strides", &[2, 2]), ints("pads", &[1, 1, 1, 1])],
            [6, 6],
            Some([3, 3]),
        )
        .unwrap();
        assert_eq!(w.out, [3, 3]);
        let w = win(vec![ints("dilations", &[2, 2])], [8, 8], Some([3, 3])).unwrap();
        assert_eq!(w.out, [4, 4]);
        // auto_pad: SAME keeps ceil(in / stride); the odd pad goes last
        // (UPPER) or first (LOWER).
        let same = |mode| {
            win(
                vec![string("auto_pad", mode), ints("strides", &[2, 2])],
                [6, 5],
                Some([3, 3]),
            )
            .unwrap()
        };
        assert_eq!(
            (same("SAME_UPPER").out, same("SAME_UPPER").pads),
            ([3, 3], [0, 1, 1, 1])
        );
        assert_eq!(same("SAME_LOWER").pads, [1, 1, 0, 1]);
        // ceil_mode on a pool.
        let w = win(
            vec![
                ints("kernel_shape", &[3, 3]),
                ints("strides", &[2, 2]),
                int("ceil_mode", 1),
            ],
            [6, 6],
            None,
        )
        .unwrap();
        assert_eq!(w.out, [3, 3]);
    }

    #[test]
    fn bad_windows_are_named() {
        let err = |attrs, kernel| win(attrs, [4, 4], kernel).unwrap_err().to_string();
        assert!(err(vec![ints("strides", &[1, 1, 1])], Some([3, 3])).contains("strides"));
        assert!(err(vec![string("auto_pad", "SAME_WEIRD")], Some([3, 3])).contains("auto_pad"));
        assert!(err(vec![ints("kernel_shape", &[2, 2])], Some([3, 3])).contains("kernel_shape"));
        assert!(err(vec![], None).contains("kernel_shape"));
        assert!(err(vec![], Some([5, 5])).contains("does not fit"));
        assert!(err(vec![ints("pads", &[-1, 0, 0, 0])], Some([3, 3])).contains("pads"));
    }
}
