//! The per-element affine layers: `BatchNormalization`, `Rescaling` and
//! `Normalization` become one `y = x · scale + shift`, folded into the
//! dense or convolution layer just before (when nothing lies between), or
//! a per-channel `scale_shift` layer.

use ndarray::ArrayD;
use serde_json::Value;

use super::KerasError;
use super::state::{Lowering, Op};

impl Lowering<'_> {
    /// The last axis a per-axis layer (batch norm, normalization) acts on
    /// must be the last one.
    pub(super) fn last_axis(&self, name: &str, default: Value) -> Result<(), KerasError> {
        let rank = self.keras.len() as i64 + 1;
        let v = self.layer.config.get(name).cloned().unwrap_or(default);
        let axis = match &v {
            Value::Array(a) if a.len() == 1 => a[0].as_i64(),
            v => v.as_i64(),
        };
        match axis {
            Some(a) if a == -1 || a == rank - 1 => Ok(()),
            _ => Err(self.err(format!(
                "`{name}` = {v}: kiln supports normalizing the last (channels) axis only"
            ))),
        }
    }

    /// Applies `y = x · scale + shift`, given per Keras element (or per
    /// last-axis channel, repeated): folded into the dense or convolution
    /// layer before, or a `scale_shift` layer.
    pub(super) fn affine(&mut self, scale: &[f32], shift: &[f32]) -> Result<(), KerasError> {
        let width = self.width();
        let last = self.keras.last().copied().unwrap_or(1);
        let expand = |v: &[f32]| -> Option<Vec<f32>> {
            match v.len() {
                1 => Some(vec![v[0]; width]),
                n if n == last => Some((0..width).map(|i| v[i % last]).collect()),
                _ => None,
            }
        };
        let (Some(s), Some(t)) = (expand(scale), expand(shift)) else {
            return Err(self.err(format!(
                "{} values do not fit rows of shape {:?}",
                scale.len().max(shift.len()),
                self.keras
            )));
        };
        let index = self.keras_index();
        let s: Vec<f32> = index.iter().map(|&i| s[i]).collect();
        let t: Vec<f32> = index.iter().map(|&i| t[i]).collect();
        let (cs, ct) = compress(&s, &t, self.kiln.first().copied().unwrap_or(1));
        match self.fold_target() {
            Some(Op::Dense { weight, bias }) if bias.len() == s.len() => {
                for (o, mut row) in weight.rows_mut().into_iter().enumerate() {
                    row.mapv_inplace(|w| w * s[o]);
                    bias[o] = bias[o] * s[o] + t[o];
                }
                return Ok(());
            }
            Some(Op::Conv {
                weight,
                bias,
                shape,
                ..
            }) if cs.len() == shape[0] || cs.len() == 1 => {
                let per = weight.len() / shape[0].max(1);
                for (o, b) in bias.iter_mut().enumerate() {
                    let (so, to) = (cs[o % cs.len()], ct[o % ct.len()]);
                    weight[o * per..(o + 1) * per]
                        .iter_mut()
                        .for_each(|w| *w *= so);
                    *b = *b * so + to;
                }
                return Ok(());
            }
            _ => {}
        }
        self.push(Op::ScaleShift {
            scale: cs,
            shift: ct,
        });
        Ok(())
    }

    pub(super) fn batch_norm(&mut self, w: &[ArrayD<f32>]) -> Result<(), KerasError> {
        self.last_axis("axis", Value::from(-1))?;
        let center = self.bool_field("center", true)?;
        let scale = self.bool_field("scale", true)?;
        let eps = self.f32_field("epsilon", 1e-3)?;
        let expected = 2 + usize::from(center) + usize::from(scale);
        if w.len() != expected {
            return Err(self.err(format!(
                "{} weights saved, expected {expected} (center={center}, scale={scale})",
                w.len()
            )));
        }
        let mut it = w.iter().map(|a| a.iter().copied().collect::<Vec<f32>>());
        let c = self.keras.last().copied().unwrap_or(1);
        let gamma = if scale { it.next() } else { None }.unwrap_or(vec![1.0; c]);
        let beta = if center { it.next() } else { None }.unwrap_or(vec![0.0; c]);
        let (mean, var) = (it.next().unwrap_or_default(), it.next().unwrap_or_default());
        if [gamma.len(), beta.len(), mean.len(), var.len()] != [c; 4] {
            return Err(self.err(format!("its statistics do not have {c} values each")));
        }
        // In f64, rounded once: gamma / sqrt(var + eps) and beta - mean · that.
        let mut s = Vec::with_capacity(c);
        let mut t = Vec::with_capacity(c);
        for i in 0..c {
            let k = f64::from(gamma[i]) / (f64::from(var[i]) + f64::from(eps)).sqrt();
            s.push(k as f32);
            t.push((f64::from(beta[i]) - f64::from(mean[i]) * k) as f32);
        }
        self.affine(&s, &t)
    }

    pub(super) fn rescaling(&mut self) -> Result<(), KerasError> {
        let read = |name: &str, default: f32| -> Result<Vec<f32>, KerasError> {
            match self.layer.config.get(name) {
                None | Some(Value::Null) => Ok(vec![default]),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| v.as_f64().map(|v| v as f32))
                    .collect::<Option<Vec<f32>>>()
                    .ok_or_else(|| self.err(format!("`{name}` holds a non-number"))),
                Some(_) => Ok(vec![self.f32_field(name, default)?]),
            }
        };
        let (scale, offset) = (read("scale", 1.0)?, read("offset", 0.0)?);
        self.affine(&scale, &offset)
    }

    pub(super) fn normalization(&mut self, w: &[ArrayD<f32>]) -> Result<(), KerasError> {
        self.last_axis("axis", Value::from(-1))?;
        if self.bool_field("invert", false)? {
            return Err(self.err("`invert` = true is not supported"));
        }
        let from_config = |name: &str| -> Option<Vec<f32>> {
            match self.layer.config.get(name)? {
                Value::Array(a) => a.iter().map(|v| v.as_f64().map(|v| v as f32)).collect(),
                v => v.as_f64().map(|v| vec![v as f32]),
            }
        };
        let (mean, var) = match (from_config("mean"), from_config("variance"), w) {
            (Some(m), Some(v), _) => (m, v),
            (_, _, [m, v, ..]) => (m.iter().copied().collect(), v.iter().copied().collect()),
            _ => return Err(self.err("neither its config nor its weights hold mean and variance")),
        };
        if mean.len() != var.len() {
            return Err(self.err("mean and variance differ in length"));
        }
        // Keras: (x − mean) / max(sqrt(variance), epsilon), epsilon 1e-7.
        let mut s = Vec::with_capacity(mean.len());
        let mut t = Vec::with_capacity(mean.len());
        for (m, v) in mean.iter().zip(&var) {
            let d = f64::from(*v).sqrt().max(1e-7);
            s.push((1.0 / d) as f32);
            t.push((-f64::from(*m) / d) as f32);
        }
        self.affine(&s, &t)
    }
}

/// The fewest channels that represent per-element `scale` and `shift` over
/// rows whose first kiln dimension is `channels`: one, `channels`, or every
/// element.
fn compress(s: &[f32], t: &[f32], channels: usize) -> (Vec<f32>, Vec<f32>) {
    let uniform = |v: &[f32], inner: usize| {
        v.chunks(inner.max(1))
            .all(|ch| ch.iter().all(|x| x.to_bits() == ch[0].to_bits()))
    };
    let width = s.len();
    if width == 0 || (uniform(s, width) && uniform(t, width)) {
        return (
            s.iter().take(1).copied().collect(),
            t.iter().take(1).copied().collect(),
        );
    }
    if channels > 0 && width.is_multiple_of(channels) {
        let inner = width / channels;
        if inner > 1 && uniform(s, inner) && uniform(t, inner) {
            let pick = |v: &[f32]| v.iter().step_by(inner).copied().collect();
            return (pick(s), pick(t));
        }
    }
    (s.to_vec(), t.to_vec())
}
