//! The memory plan of a graph model: a liveness analysis that places every
//! tensor in one arena, computed once when the model is built.
//!
//! Tensor 0 is the input and tensor `i + 1` the output of layer `i`. A
//! tensor lives from the step that writes it to the last step that reads
//! it (the output: to the end). A layer that can run in place (activations,
//! per-channel maps, `add`, `mul`) writes into its first input's region
//! when that input dies there, so the two share one *buffer*; every other
//! tensor gets a buffer of its own. Buffers whose lives overlap must not
//! share memory; the rest may. They are placed greedily by size, largest
//! first, each at the lowest offset that clears the placed buffers it
//! overlaps in time (TFLite's "greedy by size"), so the arena holds at most
//! what is live at once — usually exactly the largest live set — rather
//! than the sum of all tensors.
//!
//! Offsets and sizes are in values per row: a batch of `b` rows scales
//! every one by `b`, which keeps regions disjoint.

use alloc::vec;
use alloc::vec::Vec;

use super::Layer;
use crate::ModelError;

/// Where every tensor of a graph model lives, per row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Per tensor: its region's offset in the arena.
    pub(crate) offset: Vec<usize>,
    /// Per tensor: values per row.
    pub(crate) width: Vec<usize>,
    /// Per layer: whether its output shares its first input's region.
    pub(crate) in_place: Vec<bool>,
    /// Values per row of the whole arena.
    pub(crate) arena: usize,
    /// Values per row of all tensors together (input included): what the
    /// arena would hold without reuse.
    pub(crate) total: usize,
}

/// Whether `layer` can write its output over its first input.
pub(crate) fn runs_in_place(layer: &Layer<'_>) -> bool {
    matches!(
        layer,
        Layer::Standardize { .. }
            | Layer::Activation { .. }
            | Layer::LeakyRelu { .. }
            | Layer::GroupSoftmax { .. }
            | Layer::ScaleShift { .. }
            | Layer::Add { .. }
            | Layer::Mul { .. }
    ) || matches!(layer, Layer::Conv(l, _) if !l.writes_anew())
}

/// Whether `layer` (f32) writes a new tensor rather than rewriting one.
#[cfg(feature = "dag")]
pub(crate) fn writes_anew(layer: &Layer<'_>) -> bool {
    match layer {
        Layer::Dense { .. } => true,
        Layer::Conv(l, _) => l.writes_anew(),
        _ => false,
    }
}

/// A buffer: a region shared by a run of in-place tensors.
#[derive(Clone, Copy)]
struct Buffer {
    size: usize,
    /// First and last step it is live (closed).
    start: usize,
    end: usize,
    offset: usize,
}

impl Buffer {
    fn overlaps_in_time(&self, o: &Buffer) -> bool {
        self.start <= o.end && o.start <= self.end
    }
}

/// Plans the arena of a graph whose layer `i` reads tensors `inputs[i]`,
/// already checked to be earlier tensors of the right widths.
pub(crate) fn plan(
    input_len: usize,
    layers: &[Layer<'_>],
    inputs: &[Vec<usize>],
) -> Result<Plan, ModelError> {
    let n = layers.len() + 1;
    let mut width = Vec::with_capacity(n);
    width.push(input_len);
    width.extend(layers.iter().map(Layer::output_len));
    let total = width
        .iter()
        .try_fold(0usize, |a, &w| a.checked_add(w))
        .ok_or(ModelError::TooLarge { layer: 0 })?;
    // Step `i + 1` runs layer `i`; step 0 writes the input.
    let mut last_use: Vec<Option<usize>> = vec![None; n];
    for (i, ins) in inputs.iter().enumerate() {
        for &t in ins {
            last_use[t] = Some(i + 1);
        }
    }
    last_use[n - 1] = Some(n);
    let last_use = last_use
        .iter()
        .enumerate()
        .map(|(t, u)| u.ok_or(ModelError::UnusedTensor { tensor: t }))
        .collect::<Result<Vec<_>, _>>()?;

    let mut buffer_of = Vec::with_capacity(n);
    let mut buffers = vec![Buffer {
        size: input_len,
        start: 0,
        end: last_use[0],
        offset: 0,
    }];
    buffer_of.push(0);
    let mut in_place = Vec::with_capacity(layers.len());
    for (i, (layer, ins)) in layers.iter().zip(inputs).enumerate() {
        let (t, step) = (i + 1, i + 1);
        let first = ins.first().copied();
        let alias = first
            .filter(|&x| runs_in_place(layer) && last_use[x] == step && !ins[1..].contains(&x));
        in_place.push(alias.is_some());
        match alias {
            Some(x) => {
                let b = &mut buffers[buffer_of[x]];
                b.size = b.size.max(width[t]);
                b.end = last_use[t];
                buffer_of.push(buffer_of[x]);
            }
            None => {
                buffer_of.push(buffers.len());
                buffers.push(Buffer {
                    size: width[t],
                    start: step,
                    end: last_use[t],
                    offset: 0,
                });
            }
        }
    }

    // Largest first, then earliest (insertion sorts: the library's sorts
    // would add kilobytes to every module).
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    let key = |b: usize| (core::cmp::Reverse(buffers[b].size), buffers[b].start);
    insertion_sort(&mut order, |&a, &b| key(a) > key(b));
    let mut placed: Vec<usize> = Vec::with_capacity(buffers.len());
    let mut arena = 0usize;
    let too_large = ModelError::TooLarge { layer: 0 };
    for &b in &order {
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&p| buffers[p].overlaps_in_time(&buffers[b]))
            .map(|&p| (buffers[p].offset, buffers[p].offset + buffers[p].size))
            .collect();
        insertion_sort(&mut busy, |a, b| a > b);
        let mut offset = 0usize;
        for (lo, hi) in busy {
            if offset
                .checked_add(buffers[b].size)
                .ok_or(too_large.clone())?
                <= lo
            {
                break;
            }
            offset = offset.max(hi);
        }
        buffers[b].offset = offset;
        let end = offset
            .checked_add(buffers[b].size)
            .ok_or(too_large.clone())?;
        arena = arena.max(end);
        placed.push(b);
    }
    let offset = buffer_of.iter().map(|&b| buffers[b].offset).collect();
    Ok(Plan {
        offset,
        width,
        in_place,
        arena,
        total,
    })
}

/// Sorts `v` so that no element is `after` the one following it.
fn insertion_sort<T: Copy>(v: &mut [T], after: impl Fn(&T, &T) -> bool) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && after(&v[j - 1], &v[j]) {
            v.swap(j - 1, j);
            j -= 1;
        }
    }
}

impl Plan {
    /// The plan of a chain as its executor runs it: two ping-pong buffers
    /// of the widest tensor (none of a chain's tensors is placed).
    pub(crate) fn chain_arena(max_width: usize) -> usize {
        max_width.saturating_mul(2)
    }

    /// Tensor `t`'s region for `batch` rows.
    pub(crate) fn region(&self, t: usize, batch: usize) -> core::ops::Range<usize> {
        let start = self.offset[t] * batch;
        start..start + self.width[t] * batch
    }

    /// Whether every layer's output region is disjoint from each of its
    /// inputs' (or, run in place, equal to its first input's): what the
    /// executor's slicing relies on.
    pub(crate) fn is_sound(&self, inputs: &[Vec<usize>]) -> bool {
        inputs.iter().enumerate().all(|(i, ins)| {
            let out = self.region(i + 1, 1);
            ins.iter().enumerate().all(|(k, &t)| {
                let r = self.region(t, 1);
                if k == 0 && self.in_place[i] {
                    r.start == out.start && r.end <= out.end
                } else {
                    r.end <= out.start || out.end <= r.start
                }
            })
        })
    }
}
