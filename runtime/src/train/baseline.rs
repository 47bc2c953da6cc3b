//! The linear reference a regression model is compared with: ordinary
//! least squares (with an intercept) on the same input columns and the same
//! training rows, scored by R² on the same held-out rows. On a time series
//! whose inputs are the last T values this is the linear autoregressive
//! model AR(T).

use ndarray::{ArrayView1, ArrayView2};

/// Inputs wider than this get no baseline (the normal equations are
/// `p × p` and solved in O(p³)).
pub const MAX_FEATURES: usize = 1024;

/// Fits `y ≈ x·β + β₀` by least squares on (`x`, `y`) and returns the R² of
/// its predictions on (`x_test`, `y_test`): `1 − SS_res / SS_tot` around the
/// held-out mean, as `kiln eval` computes it. `None` when the test targets
/// are all equal, there are no rows, or the inputs are wider than
/// [`MAX_FEATURES`].
pub fn least_squares_r2(
    x: ArrayView2<f32>,
    y: ArrayView1<f32>,
    x_test: ArrayView2<f32>,
    y_test: ArrayView1<f32>,
) -> Option<f64> {
    let p = x.ncols() + 1;
    if x.nrows() == 0 || x_test.nrows() == 0 || x.ncols() > MAX_FEATURES {
        return None;
    }
    let row = |x: ArrayView1<f32>| -> Vec<f64> {
        std::iter::once(1.0)
            .chain(x.iter().map(|&v| v as f64))
            .collect()
    };
    // Normal equations XᵀX β = Xᵀy, in f64.
    let mut a = vec![vec![0.0f64; p + 1]; p];
    for (xr, &yv) in x.rows().into_iter().zip(y) {
        let xr = row(xr);
        for i in 0..p {
            for j in 0..p {
                a[i][j] += xr[i] * xr[j];
            }
            a[i][p] += xr[i] * yv as f64;
        }
    }
    let beta = solve(a)?;
    let preds: Vec<f64> = x_test
        .rows()
        .into_iter()
        .map(|xr| row(xr).iter().zip(&beta).map(|(a, b)| a * b).sum())
        .collect();
    let n = y_test.len() as f64;
    let mean = y_test.iter().map(|&v| v as f64).sum::<f64>() / n;
    let (mut ss_res, mut ss_tot) = (0.0, 0.0);
    for (pred, &yv) in preds.iter().zip(y_test) {
        ss_res += (pred - yv as f64).powi(2);
        ss_tot += (yv as f64 - mean).powi(2);
    }
    (ss_tot > 0.0).then(|| 1.0 - ss_res / ss_tot)
}

/// Solves the augmented system `a` (`p × (p + 1)`) by Gaussian elimination
/// with partial pivoting. A (near-)singular column, such as a constant
/// input, gets coefficient 0: the minimum-norm choice for that direction.
fn solve(mut a: Vec<Vec<f64>>) -> Option<Vec<f64>> {
    let p = a.len();
    let scale = (0..p).map(|i| a[i][i].abs()).fold(0.0, f64::max).max(1.0);
    let mut pivot_of = vec![None; p];
    let mut row = 0;
    for col in 0..p {
        let best = (row..p).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[best][col].abs() <= 1e-12 * scale {
            continue;
        }
        a.swap(row, best);
        let pivot = a[row].clone();
        for (i, r) in a.iter_mut().enumerate() {
            let f = r[col] / pivot[col];
            if i != row && f != 0.0 {
                for (v, pv) in r[col..].iter_mut().zip(&pivot[col..]) {
                    *v -= f * pv;
                }
            }
        }
        pivot_of[col] = Some(row);
        row += 1;
        if row == p {
            break;
        }
    }
    let beta = pivot_of
        .iter()
        .enumerate()
        .map(|(col, r)| r.map_or(0.0, |r| a[r][p] / a[r][col]))
        .collect::<Vec<_>>();
    beta.iter().all(|b| b.is_finite()).then_some(beta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};

    #[test]
    fn recovers_an_exact_linear_map() {
        // y = 2 + 3a − b, a constant third column (singular), exact fit.
        let x = Array2::from_shape_fn((20, 3), |(r, c)| match c {
            0 => r as f32,
            1 => ((r * 7) % 5) as f32,
            _ => 1.0,
        });
        let y: Array1<f32> = x
            .rows()
            .into_iter()
            .map(|r| 2.0 + 3.0 * r[0] - r[1])
            .collect();
        let r2 = least_squares_r2(x.view(), y.view(), x.view(), y.view()).unwrap();
        assert!((r2 - 1.0).abs() < 1e-9, "{r2}");
        // Predicting the mean of a target unrelated to the inputs scores ≤ 0.
        let noise: Array1<f32> = (0..20).map(|i| ((i * 13) % 7) as f32).collect();
        let r2 = least_squares_r2(x.view(), y.view(), x.view(), noise.view()).unwrap();
        assert!(r2 < 0.0, "{r2}");
        let constant = Array1::from_elem(20, 1.0f32);
        assert_eq!(
            least_squares_r2(x.view(), y.view(), x.view(), constant.view()),
            None
        );
    }
}
