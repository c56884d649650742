//! Dense per-slice products for the interpreter's typed linear and its weight gradient, so that
//! training (which runs on the interpreter until backward kernels exist) multiplies matrices
//! rather than one row at a time. Rows are grouped by the weight slice they select (a counting
//! sort), cut into blocks of at most [`BLOCK`] rows, gathered into contiguous matrices and
//! multiplied with matrixmultiply's f64 GEMM, blocks in parallel. Weight gradients sum the
//! blocks' partial products in block order, so results do not depend on the thread count.

use crate::cpu::float::Float;
use crate::tensor::Tensor;
use pigeon_ir::shape::LinearForm;
use pigeon_ir::Shape;
use rayon::prelude::*;

/// Rows per block.
const BLOCK: usize = 4096;

/// `(slice, rows)` blocks: the rows selecting each slice, in row order, at most `BLOCK` each.
fn blocks(sel: &[usize], slices: usize) -> Vec<(usize, Vec<usize>)> {
    let mut by_slice: Vec<Vec<usize>> = vec![Vec::new(); slices];
    for (i, &s) in sel.iter().enumerate() {
        if let Some(rows) = by_slice.get_mut(s) {
            rows.push(i);
        }
    }
    let mut out = Vec::new();
    for (s, rows) in by_slice.into_iter().enumerate() {
        out.extend(rows.chunks(BLOCK).map(|c| (s, c.to_vec())));
    }
    out
}

/// The rows `rows` of `t`, contiguous.
fn gather(t: &Tensor, rows: &[usize]) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows.len() * t.row_len());
    for &r in rows {
        out.extend_from_slice(t.row(r));
    }
    out
}

/// `out[i] = x[i] @ w[sel[i]]` in `form` (`out` zeroed, `x.rows` rows).
pub(super) fn linear(x: &Tensor, w: &Tensor, sel: &[usize], form: &LinearForm, out: &mut Tensor) {
    let (xw, cw) = (x.row_len(), out.row_len());
    let results: Vec<(Vec<usize>, Vec<f64>)> = blocks(sel, w.rows)
        .into_par_iter()
        .map(|(s, rows)| {
            let a = gather(x, &rows);
            let m = rows.len();
            let mut y = vec![0.0; m * cw];
            let b = w.row(s);
            // SAFETY: `a` is m x xw, `b` one weight slice of the form's shape, `y` m x cw, all
            // row-major and owned here; the strides below stay inside them.
            unsafe {
                match *form {
                    LinearForm::Plain { k, n } => f64::gemm(
                        m,
                        k,
                        n,
                        (a.as_ptr(), xw as isize, 1),
                        (b.as_ptr(), n as isize, 1),
                        0.0,
                        (y.as_mut_ptr(), cw as isize, 1),
                    ),
                    LinearForm::Batched { batch, k, n } => {
                        for bi in 0..batch {
                            f64::gemm(
                                m,
                                k,
                                n,
                                (a.as_ptr().add(bi * k), xw as isize, 1),
                                (b.as_ptr().add(bi * k * n), n as isize, 1),
                                0.0,
                                (y.as_mut_ptr().add(bi * n), cw as isize, 1),
                            );
                        }
                    }
                    LinearForm::Broadcast { batch, k, n } => f64::gemm(
                        m * batch,
                        k,
                        n,
                        (a.as_ptr(), k as isize, 1),
                        (b.as_ptr(), n as isize, 1),
                        0.0,
                        (y.as_mut_ptr(), n as isize, 1),
                    ),
                }
            }
            (rows, y)
        })
        .collect();
    for (rows, y) in results {
        for (j, &r) in rows.iter().enumerate() {
            out.row_mut(r).copy_from_slice(&y[j * cw..(j + 1) * cw]);
        }
    }
}

/// For each weight slice `s`, the sum over rows `i` with `sel[i] = s` of `x_i^T dy_i` in
/// `form`; a tensor of `slices` rows of `w_shape`.
pub(super) fn outer_sum(
    x: &Tensor,
    dy: &Tensor,
    sel: &[usize],
    form: &LinearForm,
    slices: usize,
    w_shape: &Shape,
) -> Tensor {
    let (xw, gw, ww) = (x.row_len(), dy.row_len(), w_shape.numel());
    let parts: Vec<(usize, Vec<f64>)> = blocks(sel, slices)
        .into_par_iter()
        .map(|(s, rows)| {
            let (a, g) = (gather(x, &rows), gather(dy, &rows));
            let m = rows.len();
            let mut c = vec![0.0; ww];
            // SAFETY: `a` is m x xw, `g` m x gw, `c` one weight slice, all owned here; A is read
            // transposed through its strides (row stride 1, column stride xw).
            unsafe {
                match *form {
                    LinearForm::Plain { k, n } => f64::gemm(
                        k,
                        m,
                        n,
                        (a.as_ptr(), 1, xw as isize),
                        (g.as_ptr(), gw as isize, 1),
                        0.0,
                        (c.as_mut_ptr(), n as isize, 1),
                    ),
                    LinearForm::Batched { batch, k, n } => {
                        for bi in 0..batch {
                            f64::gemm(
                                k,
                                m,
                                n,
                                (a.as_ptr().add(bi * k), 1, xw as isize),
                                (g.as_ptr().add(bi * n), gw as isize, 1),
                                0.0,
                                (c.as_mut_ptr().add(bi * k * n), n as isize, 1),
                            );
                        }
                    }
                    LinearForm::Broadcast { batch, k, n } => f64::gemm(
                        k,
                        m * batch,
                        n,
                        (a.as_ptr(), 1, k as isize),
                        (g.as_ptr(), n as isize, 1),
                        0.0,
                        (c.as_mut_ptr(), n as isize, 1),
                    ),
                }
            }
            (s, c)
        })
        .collect();
    let mut out = Tensor::zeros(slices, w_shape.clone());
    for (s, c) in parts {
        out.row_mut(s).iter_mut().zip(&c).for_each(|(o, v)| *o += v);
    }
    out
}
