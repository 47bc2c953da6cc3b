//! The `ai.onnx.ml` ops scikit-learn exports use: `LinearClassifier`,
//! `Normalizer` (L1 after a softmax), `Scaler`, the tree ensembles
//! (`trees.rs`) and `ZipMap` (the probability tensor kept, its labels in
//! `kiln.meta`).

use ndarray::{Array1, Array2};

use super::super::proto::NodeProto;
use super::super::tensor::Attrs;
use super::super::{ImportError, NodeRef};
use super::{Lowering, Op, Value, compress};

impl<'g> Lowering<'g> {
    /// Ops of the `ai.onnx.ml` domain that scikit-learn exports use.
    pub(super) fn ml_node(
        &mut self,
        r: &NodeRef,
        n: &'g NodeProto,
        mut a: Attrs<'_>,
    ) -> Result<(), ImportError> {
        match n.op_type.as_str() {
            "LinearClassifier" => {
                let coef = a
                    .floats("coefficients")?
                    .ok_or_else(|| r.err("needs `coefficients`"))?;
                let intercepts = a.floats("intercepts")?;
                let labels = match (
                    a.ints("classlabels_ints")?,
                    a.strings("classlabels_strings")?,
                ) {
                    (Some(i), _) => i.iter().map(|v| v.to_string()).collect(),
                    (None, Some(s)) => s,
                    (None, None) => return Err(r.err("needs class labels")),
                };
                a.ignore(&["multi_class"]);
                let post = a.string("post_transform")?.unwrap_or_else(|| "NONE".into());
                let x = self.act(r, n, 0)?;
                let classes = labels.len();
                if x.dims.len() != 1 || coef.len() != classes * x.dims[0] {
                    return Err(r.err(format!(
                        "{} coefficients for {classes} classes and rows of {:?}: only \
                         one coefficient row per class is supported (binary classifiers \
                         with a single row are not)",
                        coef.len(),
                        x.dims
                    )));
                }
                let weight = Array2::from_shape_vec((classes, x.dims[0]), coef).expect("sized");
                let bias = match intercepts {
                    Some(b) if b.len() == classes => Array1::from(b),
                    None => Array1::zeros(classes),
                    Some(b) => {
                        return Err(r.err(format!("{} intercepts for {classes} classes", b.len())));
                    }
                };
                let mut v = self.push(Op::Dense { weight, bias }, vec![classes]);
                match post.as_str() {
                    "NONE" => {}
                    "SOFTMAX" => {
                        v = self.push(
                            Op::Softmax {
                                group: None,
                                log: false,
                            },
                            vec![classes],
                        )
                    }
                    "LOGISTIC" => v = self.push(Op::Sigmoid, vec![classes]),
                    other => return Err(a.unsupported("post_transform", format!("{other:?}"))),
                }
                a.finish()?;
                self.labels = labels;
                self.classifier = true;
                // Output 0 is the label, which kiln does not compute.
                self.set(n, 1, v);
            }
            "Normalizer" => {
                let norm = a.string("norm")?.unwrap_or_default();
                a.finish()?;
                let x = self.act(r, n, 0)?;
                let after_softmax = matches!(
                    self.foldable(&x),
                    Some(Op::Softmax {
                        group: None,
                        log: false
                    })
                );
                if norm != "L1" || !after_softmax {
                    return Err(r.err(format!(
                        "norm {norm:?} is supported only as L1 right after a softmax (where it changes nothing)"
                    )));
                }
                self.notes.push(format!(
                    "{r}: L1 normalization after a softmax removed (rows already sum to 1)"
                ));
                self.set(n, 0, Value::Act(x));
            }
            "TreeEnsembleClassifier" | "TreeEnsembleRegressor" => {
                self.tree_ensemble(r, n, &mut a)?;
                a.finish()?;
            }
            // A classifier's probabilities as a list of maps: kiln keeps
            // the tensor, and the labels (in kiln.meta) say which is which.
            "ZipMap" => {
                let labels = match (
                    a.ints("classlabels_int64s")?,
                    a.strings("classlabels_strings")?,
                ) {
                    (Some(i), None) => i.iter().map(|v| v.to_string()).collect(),
                    (None, Some(s)) => s,
                    _ => {
                        return Err(r.err(
                            "needs exactly one of `classlabels_int64s`, `classlabels_strings`",
                        ));
                    }
                };
                a.finish()?;
                let x = self.act(r, n, 0)?;
                if x.width() != labels.len() {
                    return Err(r.err(format!(
                        "{} labels for rows of {} probabilities",
                        labels.len(),
                        x.width()
                    )));
                }
                self.labels = labels;
                self.classifier = true;
                self.set(n, 0, super::Value::Act(x));
            }
            "Scaler" => {
                let offset = a.floats("offset")?.unwrap_or_else(|| vec![0.0]);
                let scale = a.floats("scale")?.unwrap_or_else(|| vec![1.0]);
                a.finish()?;
                let x = self.act(r, n, 0)?;
                let w = x.width();
                let full = |v: Vec<f32>, what: &str| match v.len() {
                    1 => Ok(vec![v[0]; w]),
                    l if l == w => Ok(v),
                    l => Err(r.err(format!("{l} {what} values for rows of {w}"))),
                };
                let (offset, scale) = (full(offset, "offset")?, full(scale, "scale")?);
                let shift = offset.iter().zip(&scale).map(|(o, s)| -o * s).collect();
                let (scale, shift) = compress(scale, shift, &x.dims);
                let v = self.push(Op::ScaleShift { scale, shift }, x.dims);
                self.set(n, 0, v);
            }
            op => {
                return Err(r.err(format!(
                    "op `{op}` of domain ai.onnx.ml is not supported (see docs/onnx.md)"
                )));
            }
        }
        self.mark_unset(r, n);
        Ok(())
    }
}
