//! Tree ensembles (issue #22) written from seeded random trees: every
//! comparison mode, missing-value directions, sums and averages, every
//! post-transform, binary layouts. The same bits natively, in wasmtime and
//! in V8; the values of an independent reference walk; NaN accepted only
//! where every node testing the feature defines a direction.

use std::collections::BTreeMap;

use kiln::model::{
    BinaryScores, Graph, InputSpec, LayerSpec, ModelFile, PostTransform, Task, Tensor, TensorData,
    TreeAggregate,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common::*;

const FEATURES: usize = 6;
/// Features 0..MISSING have a missing direction in every node.
const MISSING: usize = 3;

/// One node: flags, feature, true child, false child; threshold.
type Node = ([i32; 4], f32);

/// A random tree of depth ≤ `depth` appended to `nodes` in preorder
/// (children after parents); leaves add to `targets` random entries.
fn tree(
    rng: &mut ChaCha8Rng,
    depth: usize,
    targets: usize,
    nodes: &mut Vec<Node>,
    leaves: &mut (Vec<i32>, Vec<f32>),
) -> usize {
    let at = nodes.len();
    if depth == 0 || rng.random_bool(0.2) {
        let start = leaves.0.len() as i32;
        // One to `targets` entries, to distinct or repeated targets.
        for _ in 0..rng.random_range(1..=targets) {
            leaves.0.push(rng.random_range(0..targets) as i32);
            leaves.1.push(rng.random_range(-1.0..1.0));
        }
        nodes.push(([0, 0, start, leaves.0.len() as i32], 0.0));
        return at;
    }
    let feature = rng.random_range(0..FEATURES);
    let mode = rng.random_range(1..=6);
    let missing = if feature < MISSING {
        16 | if rng.random_bool(0.5) { 32 } else { 0 }
    } else {
        0
    };
    // Thresholds on a grid of quarters, so `==` and `!=` meet inputs.
    let threshold = f32::from(rng.random_range(-8i8..8)) / 4.0;
    nodes.push(([mode | missing, feature as i32, 0, 0], threshold));
    let yes = tree(rng, depth - 1, targets, nodes, leaves);
    let no = tree(rng, depth - 1, targets, nodes, leaves);
    nodes[at].0[2] = yes as i32;
    nodes[at].0[3] = no as i32;
    at
}

/// An ensemble of `trees` random trees.
pub(crate) fn model(
    seed: u64,
    trees: usize,
    targets: usize,
    aggregate: TreeAggregate,
    post_transform: PostTransform,
    binary: BinaryScores,
) -> ModelFile {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut nodes, mut leaves, mut roots) = (Vec::new(), (Vec::new(), Vec::new()), Vec::new());
    for _ in 0..trees {
        roots.push(tree(&mut rng, 5, targets, &mut nodes, &mut leaves) as i32);
    }
    let i32s = |shape: Vec<usize>, v: Vec<i32>| Tensor {
        shape,
        data: TensorData::I32(v),
    };
    let n = nodes.len();
    let mut t = BTreeMap::new();
    let words = nodes.iter().flat_map(|(w, _)| *w).collect();
    t.insert("t.nodes".into(), i32s(vec![n, 4], words));
    let thresholds = nodes.iter().map(|(_, t)| *t).collect();
    t.insert("t.thresholds".into(), Tensor::new(vec![n], thresholds));
    t.insert("t.roots".into(), i32s(vec![roots.len()], roots));
    let entries = leaves.0.len();
    t.insert("t.leaf_targets".into(), i32s(vec![entries], leaves.0));
    t.insert("t.leaf_values".into(), Tensor::new(vec![entries], leaves.1));
    let base: Vec<f32> = (0..targets).map(|_| rng.random_range(-0.5..0.5)).collect();
    t.insert("t.base".into(), Tensor::new(vec![targets], base));
    let graph = Graph {
        format: kiln::model::FORMAT_VERSION,
        name: "trees".into(),
        version: "1".into(),
        task: Task::Regression,
        input: InputSpec {
            name: "x".into(),
            shape: vec![FEATURES],
            features: (0..FEATURES).map(|f| format!("f{f}")).collect(),
        },
        target: None,
        labels: vec![],
        layers: vec![LayerSpec::TreeEnsemble {
            targets,
            nodes: "t.nodes".into(),
            thresholds: "t.thresholds".into(),
            roots: "t.roots".into(),
            leaf_targets: "t.leaf_targets".into(),
            leaf_values: "t.leaf_values".into(),
            base: Some("t.base".into()),
            aggregate,
            post_transform,
            binary,
        }],
        wiring: vec![],
    };
    ModelFile { graph, tensors: t }
}

/// The ensemble in f64, written from the schema (docs/model-format.md):
/// each tree walked, leaf values summed, averaged, based, transformed.
fn reference(file: &ModelFile, x: &[f32]) -> Vec<f64> {
    let LayerSpec::TreeEnsemble {
        targets,
        aggregate,
        post_transform,
        binary,
        ..
    } = &file.graph.layers[0]
    else {
        unreachable!()
    };
    let i32s = |name: &str| match &file.tensors[name].data {
        TensorData::I32(v) => v.clone(),
        _ => unreachable!(),
    };
    let f32s = |name: &str| file.tensors[name].as_f32().unwrap().to_vec();
    let (nodes, thr, roots) = (i32s("t.nodes"), f32s("t.thresholds"), i32s("t.roots"));
    let (lt, lv, base) = (
        i32s("t.leaf_targets"),
        f32s("t.leaf_values"),
        f32s("t.base"),
    );
    let mut acc = vec![0.0f64; *targets];
    for &root in &roots {
        let mut i = root as usize;
        while nodes[4 * i] & 15 != 0 {
            let [flags, f, yes, no] = [0, 1, 2, 3].map(|k| nodes[4 * i + k]);
            let (v, t) = (x[f as usize], thr[i]);
            let go = if v.is_nan() {
                flags & 32 != 0
            } else {
                [v <= t, v < t, v >= t, v > t, v == t, v != t][(flags & 15) as usize - 1]
            };
            i = if go { yes } else { no } as usize;
        }
        for e in nodes[4 * i + 2] as usize..nodes[4 * i + 3] as usize {
            acc[lt[e] as usize] += f64::from(lv[e]);
        }
    }
    let n = roots.len() as f64;
    let s: Vec<f64> = (0..*targets)
        .map(|k| match aggregate {
            TreeAggregate::Sum => acc[k],
            TreeAggregate::Average => acc[k] / n,
        } + f64::from(base[k]))
        .map(|v| f64::from(v as f32))
        .collect();
    let logistic = |v: f64| 1.0 / (1.0 + (-v).exp());
    let transform = |s: Vec<f64>| -> Vec<f64> {
        match post_transform {
            PostTransform::None => s,
            PostTransform::Logistic => s.into_iter().map(logistic).collect(),
            PostTransform::Softmax | PostTransform::SoftmaxZero => {
                let keep = |v: f64| *post_transform == PostTransform::Softmax || v.abs() > 1e-7;
                let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s
                    .iter()
                    .map(|&v| if keep(v) { (v - max).exp() } else { 0.0 })
                    .collect();
                let sum: f64 = e.iter().sum();
                e.iter().map(|v| v / sum).collect()
            }
            PostTransform::Probit => unreachable!("not in these tests"),
        }
    };
    match binary {
        BinaryScores::No => transform(s),
        BinaryScores::Complement => {
            let p = transform(s)[0];
            vec![1.0 - p, p]
        }
        BinaryScores::Negate => transform(vec![-s[0], s[0]]),
    }
}

/// Every aggregate, post-transform and binary layout: wasmtime, V8 and
/// native give the same bits, also with NaN in the features that have a
/// missing direction, within 1e-6 of the reference; `kiln build` embeds the
/// trees kernel.
#[test]
fn tree_ensembles_agree_everywhere_and_with_the_reference() {
    use BinaryScores as B;
    use PostTransform as P;
    use TreeAggregate as A;
    let cases = [
        ("sum", 7, 1, A::Sum, P::None, B::No),
        ("average", 12, 3, A::Average, P::None, B::No),
        ("softmax", 9, 4, A::Sum, P::Softmax, B::No),
        ("softmax-zero", 5, 3, A::Average, P::SoftmaxZero, B::No),
        ("logistic", 6, 2, A::Sum, P::Logistic, B::No),
        (
            "binary-complement",
            8,
            1,
            A::Sum,
            P::Logistic,
            B::Complement,
        ),
        ("binary-negate", 8, 1, A::Sum, P::Logistic, B::Negate),
    ];
    let dir = scratch();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    // Values on the thresholds' grid (ties for every mode) and between;
    // NaN in the features with a missing direction.
    let rows: Vec<Vec<Option<f32>>> = (0..40)
        .map(|_| {
            (0..FEATURES)
                .map(|f| {
                    if f < MISSING && rng.random_bool(0.3) {
                        None
                    } else if rng.random_bool(0.5) {
                        Some(f32::from(rng.random_range(-9i8..9)) / 4.0)
                    } else {
                        Some(rng.random_range(-2.5..2.5))
                    }
                })
                .collect()
        })
        .collect();
    let rows_path = dir.path().join("rows.json");
    std::fs::write(&rows_path, serde_json::to_string(&rows).unwrap()).unwrap();
    let values: Vec<Vec<f32>> = rows
        .iter()
        .map(|r| r.iter().map(|v| v.unwrap_or(f32::NAN)).collect())
        .collect();
    for (seed, (name, trees, targets, aggregate, post, binary)) in cases.into_iter().enumerate() {
        let file = model(seed as u64, trees, targets, aggregate, post, binary);
        let (path, module) = (
            dir.path().join(format!("{name}.safetensors")),
            dir.path().join(format!("{name}.wasm")),
        );
        file.save(&path).unwrap();
        kiln_ok(&["build", s(&path), "-o", s(&module)]);
        assert_eq!(kernel_of(&module), "trees", "{name}");
        let predict = |extra: &[&str]| {
            let args = [&["predict", s(&module), "--input", s(&rows_path)], extra].concat();
            scores(&kiln_ok(&args))
        };
        let (wasmtime, native) = (predict(&[]), predict(&["--native"]));
        assert_eq!(native.len(), rows.len(), "{name}");
        assert_eq!(
            bits(&wasmtime),
            bits(&native),
            "{name}: wasmtime and native differ"
        );
        let v8 = run_in_node(&module, &rows_path);
        assert_eq!(bits(&v8), bits(&native), "{name}: V8 and native differ");
        let single = predict(&["--batch", "1"]);
        assert_eq!(bits(&single), bits(&native), "{name}: batch of 1 differs");
        let from_file = scores(&kiln_ok(&["predict", s(&path), "--input", s(&rows_path)]));
        assert_eq!(
            bits(&from_file),
            bits(&native),
            "{name}: the model file differs"
        );
        for (row, got) in values.iter().zip(&native) {
            let want = reference(&file, row);
            assert_eq!(got.len(), want.len(), "{name}");
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (f64::from(*g) - w).abs() <= 1e-6,
                    "{name}: {g} against the reference's {w} for {row:?}"
                );
            }
        }
        // Raw sums are the reference's bits exactly: one f64 sum, one
        // rounding.
        if post == P::None {
            for (row, got) in values.iter().zip(&native) {
                let want: Vec<f32> = reference(&file, row).iter().map(|&v| v as f32).collect();
                assert_eq!(got, &want, "{name}");
            }
        }
    }
}

/// A NaN in a feature without a missing direction is refused naming the
/// feature, by `kiln predict` in every way of running; `kiln.meta` lists
/// the features that may be missing.
#[test]
fn nan_without_a_missing_direction_is_refused_by_feature() {
    let dir = scratch();
    let file = model(
        3,
        5,
        2,
        TreeAggregate::Sum,
        PostTransform::None,
        BinaryScores::No,
    );
    let (path, module) = (dir.path().join("t.safetensors"), dir.path().join("t.wasm"));
    file.save(&path).unwrap();
    kiln_ok(&["build", s(&path), "-o", s(&module)]);
    let info: serde_json::Value = serde_json::from_str(&kiln_ok(&["inspect", s(&module)])).unwrap();
    // `kiln inspect` summarises the ensemble, from the module and the file.
    let n = file.tensors["t.thresholds"].data.len();
    for info in [
        &info,
        &serde_json::from_str(&kiln_ok(&["inspect", s(&path)])).unwrap(),
    ] {
        let t = &info["trees"][0];
        assert_eq!(
            (t["trees"].as_u64(), t["nodes"].as_u64()),
            (Some(5), Some(n as u64)),
            "{info}"
        );
        let leaves = t["leaves"].as_u64().unwrap() as usize;
        // Every tree a binary tree: leaves = branches + trees.
        assert_eq!(2 * leaves, n + 5, "{info}");
        assert!(
            (1..=5).contains(&t["max_depth"].as_u64().unwrap()),
            "{info}"
        );
        assert!(t["features_used"].as_u64().unwrap() as usize <= FEATURES);
    }
    assert_eq!(info["kernel"], "trees");
    let missing = info["meta"]["missing"].as_array().unwrap();
    // Features 0..MISSING always have a direction; the others only if no
    // node tests them.
    assert!(
        missing.len() >= MISSING && missing[..MISSING] == [0, 1, 2],
        "{info}"
    );
    let tested = (MISSING..FEATURES)
        .find(|f| !missing.contains(&(*f).into()))
        .unwrap();
    let mut row = vec![serde_json::json!(0.5); FEATURES];
    row[tested] = serde_json::Value::Null;
    let rows = dir.path().join("rows.json");
    std::fs::write(&rows, serde_json::to_string(&[&row]).unwrap()).unwrap();
    for target in [&path, &module] {
        for extra in [&[][..], &["--native"]] {
            let args = [&["predict", s(target), "--input", s(&rows)], extra].concat();
            let err = kiln_err(&args);
            assert!(
                err.contains(&format!(
                    "row 1, feature {tested} `f{tested}` is missing (null)"
                )),
                "{err}"
            );
        }
    }
}
