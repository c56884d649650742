//! Row arithmetic of traversal statements (`body.rs`): element-wise activations and their
//! derivatives with the operator matched once per call, broadcasting binary operators, sums
//! and dot products in interleaved partial sums, group reductions, and one row times a weight.

use super::float::{unary, unary_grad, Float};
use pigeon_ir::shape::LinearForm;
use pigeon_ir::{AggOp, BinaryOp, UnaryOp};

/// Expands `$m!(f)` with the closure `f` of binary operator `$op`, matched once (the loops
/// inside `$m` are then monomorphised per operator).
macro_rules! with_binary_op {
    ($op:expr, $m:ident) => {
        match $op {
            BinaryOp::Add => $m!(|x, y| x + y),
            BinaryOp::Sub => $m!(|x, y| x - y),
            BinaryOp::Mul => $m!(|x, y| x * y),
            BinaryOp::Div => $m!(|x, y| x / y),
            BinaryOp::Max => $m!(|x: T, y| x.max(y)),
        }
    };
}

/// `out = f(x)` element-wise, the operator matched once.
pub(super) fn unary_all<T: Float>(f: UnaryOp, x: &[T], out: &mut [T]) {
    match f {
        UnaryOp::Neg => out.iter_mut().zip(x).for_each(|(o, &v)| *o = -v),
        UnaryOp::Relu => out.iter_mut().zip(x).for_each(|(o, &v)| *o = v.max(T::ZERO)),
        UnaryOp::Gelu => T::gelu_rows(x, out),
        f => out.iter_mut().zip(x).for_each(|(o, &v)| *o = unary(f, v)),
    }
}

/// `out = dy * f'(x)` element-wise, the operator matched once.
pub(super) fn unary_grad_all<T: Float>(f: UnaryOp, x: &[T], dy: &[T], out: &mut [T]) {
    match f {
        UnaryOp::Neg => out.iter_mut().zip(dy).for_each(|(o, &d)| *o = -d),
        UnaryOp::Gelu => T::gelu_grad_rows(x, dy, out),
        f => {
            for ((o, &v), &d) in out.iter_mut().zip(x).zip(dy) {
                *o = unary_grad(f, v, d);
            }
        }
    }
}

/// Independent partial sums of [`sum`] and [`dot`] (the compiler keeps them in one vector
/// register, instead of one add waiting for the previous).
const LANES: usize = 8;

/// The sum of a row, in [`LANES`] interleaved partial sums.
#[inline]
pub(super) fn sum<T: Float>(x: &[T]) -> T {
    let mut acc = [T::ZERO; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    chunks.remainder().iter().zip(&mut acc).for_each(|(&v, a)| *a += v);
    acc.iter().fold(T::ZERO, |s, &a| s + a)
}

/// The dot product of two rows, in [`LANES`] interleaved partial sums.
#[inline]
pub(super) fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::ZERO; LANES];
    let (mut ca, mut cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (x, y) in (&mut ca).zip(&mut cb) {
        for ((s, &p), &q) in acc.iter_mut().zip(x).zip(y) {
            *s += p * q;
        }
    }
    for ((&p, &q), s) in ca.remainder().iter().zip(cb.remainder()).zip(&mut acc) {
        *s += p * q;
    }
    acc.iter().fold(T::ZERO, |s, &a| s + a)
}

/// Reduces `n > 0` rows into `acc` (overwriting, or adding when `add`); nothing for no rows.
pub(super) fn reduce<'r, T: Float + 'r>(
    op: AggOp,
    rows: impl Iterator<Item = &'r [T]> + Clone,
    n: usize,
    acc: &mut [T],
    add: bool,
) {
    if n == 0 {
        return;
    }
    let width = acc.len();
    let mut tmp = [T::ZERO; 64];
    let mut own = Vec::new();
    let r: &mut [T] = if width <= 64 {
        &mut tmp[..width]
    } else {
        own.resize(width, T::ZERO);
        &mut own
    };
    match op {
        AggOp::Sum | AggOp::Mean => {
            r.iter_mut().for_each(|v| *v = T::ZERO);
            for x in rows {
                r.iter_mut().zip(x).for_each(|(v, &y)| *v += y);
            }
            if op == AggOp::Mean {
                let c = T::from_f64(n as f64);
                r.iter_mut().for_each(|v| *v = *v / c);
            }
        }
        AggOp::Max => {
            r.iter_mut().for_each(|v| *v = T::NEG_INFINITY);
            for x in rows {
                r.iter_mut().zip(x).for_each(|(v, &y)| *v = v.max(y));
            }
        }
    }
    for (a, &v) in acc.iter_mut().zip(r.iter()) {
        *a = if add { *a + v } else { v };
    }
}
/// `out = op(a, b)` with broadcast offsets. The operator is matched once per row, not per
/// element, and the common shapes (equal, or one side a scalar) take contiguous loops the
/// compiler vectorises.
pub(super) fn binary<T: Float>(
    op: BinaryOp,
    a: &[T],
    b: &[T],
    ia: &[usize],
    ib: &[usize],
    out: &mut [T],
) {
    match op {
        BinaryOp::Add => binary_with(|x, y| x + y, a, b, ia, ib, out),
        BinaryOp::Sub => binary_with(|x, y| x - y, a, b, ia, ib, out),
        BinaryOp::Mul => binary_with(|x, y| x * y, a, b, ia, ib, out),
        BinaryOp::Div => binary_with(|x, y| x / y, a, b, ia, ib, out),
        BinaryOp::Max => binary_with(|x: T, y| x.max(y), a, b, ia, ib, out),
    }
}

/// `out[j] = op(a(j), b(j))` for the rows `j` of `out` (`w` values each), the operator matched
/// once for all rows.
pub(super) fn binary_rows<'r, T: Float + 'r>(
    op: BinaryOp,
    a: impl Fn(usize) -> &'r [T],
    b: impl Fn(usize) -> &'r [T],
    ia: &[usize],
    ib: &[usize],
    out: &mut [T],
    w: usize,
) {
    let n = out.len() / w.max(1);
    let mut rows = out.chunks_exact_mut(w.max(1));
    let dest = |_: usize| rows.next().unwrap_or_default();
    binary_rows_into(op, false, a, b, ia, ib, dest, n)
}

/// `dest(j) = op(a(j), b(j))`, or `dest(j) += op(a(j), b(j))` when `add`, for rows `0..n`,
/// the operator matched once (a binary statement computed by its store: `body.rs`).
#[allow(clippy::too_many_arguments)]
pub(super) fn binary_rows_into<'r, 'o, T: Float + 'r + 'o>(
    op: BinaryOp,
    add: bool,
    a: impl Fn(usize) -> &'r [T],
    b: impl Fn(usize) -> &'r [T],
    ia: &[usize],
    ib: &[usize],
    dest: impl FnMut(usize) -> &'o mut [T],
    n: usize,
) {
    macro_rules! rows {
        ($f:expr) => {
            if add {
                rows_with($f, |o: &mut T, v| *o += v, a, b, ia, ib, dest, n)
            } else {
                rows_with($f, |o: &mut T, v| *o = v, a, b, ia, ib, dest, n)
            }
        };
    }
    with_binary_op!(op, rows)
}

/// `out[j] = op(a(j), b(j))` for one-value rows `j`, the operator matched once.
pub(super) fn binary_values<T: Float>(
    op: BinaryOp,
    a: impl Fn(usize) -> T,
    b: impl Fn(usize) -> T,
    out: &mut [T],
) {
    macro_rules! values {
        ($f:expr) => {{
            let f = $f;
            for (j, o) in out.iter_mut().enumerate() {
                *o = f(a(j), b(j));
            }
        }};
    }
    with_binary_op!(op, values)
}

/// `acc += op(a(j), b(j))` for the rows `j` of `rows` in order, the operator matched once (a
/// sum over a node's rows of a binary statement computed into the sum: `body.rs`).
pub(super) fn binary_sum_rows<'r, T: Float + 'r>(
    op: BinaryOp,
    a: impl Fn(usize) -> &'r [T],
    b: impl Fn(usize) -> &'r [T],
    ia: &[usize],
    ib: &[usize],
    rows: std::ops::Range<usize>,
    acc: &mut [T],
) {
    let add = |o: &mut T, v: T| *o += v;
    macro_rules! rows {
        ($f:expr) => {
            for j in rows {
                binary_into($f, add, a(j), b(j), ia, ib, acc);
            }
        };
    }
    with_binary_op!(op, rows)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn rows_with<'r, 'o, T: Float + 'r + 'o>(
    f: impl Fn(T, T) -> T,
    put: impl Fn(&mut T, T),
    a: impl Fn(usize) -> &'r [T],
    b: impl Fn(usize) -> &'r [T],
    ia: &[usize],
    ib: &[usize],
    mut dest: impl FnMut(usize) -> &'o mut [T],
    n: usize,
) {
    for j in 0..n {
        binary_into(&f, &put, a(j), b(j), ia, ib, dest(j));
    }
}

#[inline(always)]
fn binary_with<T: Float>(
    f: impl Fn(T, T) -> T,
    a: &[T],
    b: &[T],
    ia: &[usize],
    ib: &[usize],
    out: &mut [T],
) {
    binary_into(f, |o: &mut T, v| *o = v, a, b, ia, ib, out)
}

/// `put(out[i], f(a, b))` for every element, the common shapes (equal, or one side a scalar)
/// in contiguous loops.
#[inline(always)]
fn binary_into<T: Float>(
    f: impl Fn(T, T) -> T,
    put: impl Fn(&mut T, T),
    a: &[T],
    b: &[T],
    ia: &[usize],
    ib: &[usize],
    out: &mut [T],
) {
    let n = out.len();
    if a.len() == n && b.len() == n {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            put(o, f(x, y));
        }
    } else if a.len() == 1 && b.len() == n {
        let x = a[0];
        for (o, &y) in out.iter_mut().zip(b) {
            put(o, f(x, y));
        }
    } else if b.len() == 1 && a.len() == n {
        let y = b[0];
        for (o, &x) in out.iter_mut().zip(a) {
            put(o, f(x, y));
        }
    } else {
        for ((o, &pa), &pb) in out.iter_mut().zip(ia).zip(ib) {
            put(o, f(a[pa], b[pb]));
        }
    }
}

/// `out = x @ w` for one row in the given form.
pub(super) fn matvec<T: Float>(form: &LinearForm, x: &[T], w: &[T], out: &mut [T]) {
    let mv = |x: &[T], w: &[T], k: usize, n: usize, out: &mut [T]| {
        out.iter_mut().for_each(|o| *o = T::ZERO);
        for kk in 0..k {
            let xv = x[kk];
            for (o, &wv) in out.iter_mut().zip(&w[kk * n..(kk + 1) * n]) {
                *o += xv * wv;
            }
        }
    };
    match *form {
        LinearForm::Plain { k, n } => mv(x, w, k, n, out),
        LinearForm::Batched { batch, k, n } => {
            for b in 0..batch {
                mv(
                    &x[b * k..(b + 1) * k],
                    &w[b * k * n..(b + 1) * k * n],
                    k,
                    n,
                    &mut out[b * n..(b + 1) * n],
                );
            }
        }
        LinearForm::Broadcast { batch, k, n } => {
            for b in 0..batch {
                mv(&x[b * k..(b + 1) * k], w, k, n, &mut out[b * n..(b + 1) * n]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPS: [BinaryOp; 5] =
        [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max];

    /// Three rows of a `[2, 3]` operand and of a scalar, and three rows of a `[2]` operand
    /// broadcast over the last axis (`ib`).
    type Rows = Vec<Vec<f64>>;

    fn rows() -> (Rows, Rows, Rows) {
        let v = |j: usize, n: usize| (0..n).map(|i| (i * 7 + j * 3) as f64 * 0.25 - 1.1).collect();
        ((0..3).map(|j| v(j, 6)).collect(), (0..3).map(|j| v(j + 5, 1)).collect(), {
            (0..3).map(|j| v(j + 9, 2)).collect()
        })
    }

    #[test]
    fn binary_over_rows_matches_binary_per_row() {
        let (full, scalar, half) = rows();
        let ib: Vec<usize> = (0..6).map(|i| i / 3).collect();
        let ia: Vec<usize> = (0..6).collect();
        for op in OPS {
            for (b, ib) in [(&full, &ia), (&scalar, &ia), (&half, &ib)] {
                let mut want = vec![0.0; 18];
                for (j, o) in want.chunks_exact_mut(6).enumerate() {
                    binary(op, &full[j], &b[j], &ia, ib, o);
                }
                let mut got = vec![0.0; 18];
                binary_rows(op, |j| &full[j], |j| &b[j], &ia, ib, &mut got, 6);
                assert_eq!(got, want, "{op:?}");
                // Added into rows holding 1: the same values plus 1.
                let mut added = [[1.0; 6]; 3];
                let mut it = added.iter_mut();
                let dest = |_| it.next().map(|r| &mut r[..]).unwrap_or_default();
                binary_rows_into(op, true, |j| &full[j], |j| &b[j], &ia, ib, dest, 3);
                let added: Vec<f64> = added.iter().flatten().map(|v| v - 1.0).collect();
                for (g, w) in added.iter().zip(&want) {
                    assert!((g - w).abs() <= 1e-12, "{op:?}: {g} + 1 - 1 vs {w}");
                }
            }
        }
    }

    #[test]
    fn binary_over_values_matches_binary_per_row() {
        let (_, scalar, half) = rows();
        for op in OPS {
            let mut want = [0.0; 3];
            for (j, o) in want.iter_mut().enumerate() {
                binary(op, &scalar[j], &half[j][1..], &[0], &[0], std::slice::from_mut(o));
            }
            let mut got = [0.0; 3];
            binary_values(op, |j| scalar[j][0], |j| half[j][1], &mut got);
            assert_eq!(got, want, "{op:?}");
        }
    }

    #[test]
    fn binary_summed_over_rows_matches_the_reduction() {
        let (full, scalar, _) = rows();
        let ia: Vec<usize> = (0..6).collect();
        for op in OPS {
            let mut products = vec![vec![0.0; 6]; 3];
            for (j, o) in products.iter_mut().enumerate() {
                binary(op, &scalar[j], &full[j], &ia, &ia, o);
            }
            let mut want = vec![0.0; 6];
            reduce(AggOp::Sum, products[1..].iter().map(|r| &r[..]), 2, &mut want, false);
            let mut got = vec![0.0; 6];
            binary_sum_rows(op, |j| &scalar[j], |j| &full[j], &ia, &ia, 1..3, &mut got);
            assert_eq!(got, want, "{op:?}");
        }
    }
}
