//! The derivative operators of the inter-operator IR (what the autodiff pass emits besides
//! forward operators), evaluated in f64: the transposes of gather, slice and broadcasting, the
//! weight gradient of a typed linear, element-wise derivatives, group sizes, the routing of a
//! max aggregation's adjoint, and last-axis narrowing.

use super::elementwise::broadcast_offsets;
use super::linear::{gather_map, selection};
use super::{math, Ctx, Val};
use crate::error::{Result, RuntimeError};
use crate::tensor::Tensor;
use pigeon_ir::shape::{self, LinearForm};
use pigeon_ir::{AggGroup, Domain, Index, Op, Select, Shape, ValueId};

fn internal(m: String) -> RuntimeError {
    RuntimeError::Internal(m)
}

/// Evaluates one derivative operator.
pub(super) fn compute<'v>(
    ctx: &Ctx,
    op: &Op,
    val: &dyn Fn(ValueId) -> Result<Val<'v>>,
) -> Result<Tensor> {
    match op {
        Op::Scatter { x, index } => scatter(ctx, val(*x)?, *index),
        Op::SliceSum { x, by, domain } => slice_sum(ctx, val(*x)?, *by, *domain),
        Op::SumTo { x, shape } => sum_to(val(*x)?.t, shape),
        Op::Transpose { x } => transpose(val(*x)?.t),
        Op::LinearGrad { x, dy, by, domain, shape } => {
            linear_grad(ctx, val(*x)?, val(*dy)?.t, *by, *domain, shape)
        }
        Op::UnaryGrad { op, x, dy } => {
            let (x, dy) = (val(*x)?.t, val(*dy)?.t);
            if x.data.len() != dy.data.len() {
                return Err(internal("unary gradient operands differ in size".into()));
            }
            let data =
                x.data.iter().zip(&dy.data).map(|(&x, &g)| g * math::unary_derivative(*op, x));
            Ok(Tensor { rows: dy.rows, shape: dy.shape.clone(), data: data.collect() })
        }
        Op::GroupSize { group } => Ok(group_size(ctx, *group)),
        Op::MaxGrad { group, x, dy } => max_grad(ctx, *group, val(*x)?.t, val(*dy)?.t),
        Op::Narrow { x, start, len } => narrow(val(*x)?.t, *start, *len),
        other => {
            Err(internal(format!("{} is not a derivative operator", pigeon_ir::text::op(other))))
        }
    }
}

/// Each row of the gather's source sums the rows of `x` that read it.
fn scatter(ctx: &Ctx, x: Val, index: Index) -> Result<Tensor> {
    let (to, map) = gather_map(ctx, index, x.domain)?;
    let mut out = Tensor::zeros(ctx.rows(to), x.t.shape.clone());
    for (i, &r) in map.iter().enumerate() {
        for (o, v) in out.row_mut(r).iter_mut().zip(x.t.row(i)) {
            *o += v;
        }
    }
    Ok(out)
}

/// Each weight row sums the rows that select it.
fn slice_sum(ctx: &Ctx, x: Val, by: Select, domain: Domain) -> Result<Tensor> {
    let sel = selection(ctx, x.domain, by, domain)?;
    let mut out = Tensor::zeros(ctx.rows(domain), x.t.shape.clone());
    for (i, &s) in sel.iter().enumerate().take(x.t.rows) {
        for (o, v) in out.row_mut(s).iter_mut().zip(x.t.row(i)) {
            *o += v;
        }
    }
    Ok(out)
}

/// Sums each row down to `to`, which broadcasts to the row's shape.
fn sum_to(x: &Tensor, to: &Shape) -> Result<Tensor> {
    if shape::broadcast(to, &x.shape).as_ref() != Some(&x.shape) {
        return Err(internal(format!("cannot sum {} down to {to}", x.shape)));
    }
    let offsets = broadcast_offsets(to, &x.shape);
    let mut out = Tensor::zeros(x.rows, to.clone());
    for i in 0..x.rows {
        let row = x.row(i).to_vec();
        let o = out.row_mut(i);
        for (j, v) in row.iter().enumerate() {
            o[offsets[j]] += v;
        }
    }
    Ok(out)
}

/// Swaps the last two axes of each row.
fn transpose(x: &Tensor) -> Result<Tensor> {
    let d = x.shape.dims();
    if d.len() < 2 {
        return Err(internal(format!("cannot transpose {}", x.shape)));
    }
    let (k, n) = (d[d.len() - 2], d[d.len() - 1]);
    let mut dims = d.to_vec();
    dims.swap(d.len() - 2, d.len() - 1);
    let mut out = Tensor::zeros(x.rows, Shape(dims));
    for i in 0..x.rows {
        let src = x.row(i);
        let dst = out.row_mut(i);
        for (s, t) in src.chunks(k * n).zip(dst.chunks_mut(k * n)) {
            for r in 0..k {
                for c in 0..n {
                    t[c * k + r] = s[r * n + c];
                }
            }
        }
    }
    Ok(out)
}

/// For each weight row, the sum of the outer products of the rows that select it.
fn linear_grad(
    ctx: &Ctx,
    x: Val,
    dy: &Tensor,
    by: Select,
    domain: Domain,
    w_shape: &Shape,
) -> Result<Tensor> {
    let (_, form) = shape::linear(&x.t.shape, w_shape)
        .ok_or_else(|| internal(format!("cannot multiply {} by {w_shape}", x.t.shape)))?;
    let sel = selection(ctx, x.domain, by, domain)?;
    let (batch, k, n, shared) = match form {
        LinearForm::Plain { k, n } => (1, k, n, true),
        LinearForm::Batched { batch, k, n } => (batch, k, n, false),
        LinearForm::Broadcast { batch, k, n } => (batch, k, n, true),
    };
    let weight_rows = ctx.rows(domain);
    let zeros = || Tensor::zeros(weight_rows, w_shape.clone());
    if !domain.is_weight_like() {
        // One weight row per row (`by same` on a row domain): nothing to reduce.
        let mut out = zeros();
        for (i, &s) in sel.iter().enumerate().take(x.t.rows) {
            outer_add(x.t.row(i), dy.row(i), out.row_mut(s), batch, k, n, shared);
        }
        return Ok(out);
    }
    let rows = x.t.rows.min(sel.len());
    let out = super::dense::outer_sum(x.t, dy, &sel[..rows], &form, weight_rows, w_shape);
    Ok(out)
}

/// `w += x^T g` for one row in a linear form of `batch` blocks of `k x n` (one shared block
/// when `shared`), skipping zero entries of `x` (exact for finite values).
fn outer_add(x: &[f64], g: &[f64], w: &mut [f64], batch: usize, k: usize, n: usize, shared: bool) {
    for b in 0..batch {
        let wb = if shared { 0 } else { b * k * n };
        for kk in 0..k {
            let xv = x[b * k + kk];
            if xv == 0.0 {
                continue;
            }
            let row = &mut w[wb + kk * n..wb + (kk + 1) * n];
            for (o, &gv) in row.iter_mut().zip(&g[b * n..(b + 1) * n]) {
                *o += xv * gv;
            }
        }
    }
}

/// Each destination's incoming edges, split into per-relation runs when `group` says so.
fn groups<'a>(ctx: &'a Ctx, group: AggGroup) -> Vec<(usize, &'a [u32])> {
    let rel = &ctx.graph.rel;
    let mut out = Vec::new();
    for v in 0..ctx.graph.num_nodes() {
        let edges = ctx.in_edges().of(v);
        match group {
            AggGroup::All => out.push((v, edges)),
            AggGroup::PerRelation => out.extend(
                edges.chunk_by(|&a, &b| rel[a as usize] == rel[b as usize]).map(|run| (v, run)),
            ),
        }
    }
    out
}

/// The size of each edge's group.
fn group_size(ctx: &Ctx, group: AggGroup) -> Tensor {
    let mut out = Tensor::zeros(ctx.graph.num_edges(), Shape::scalar());
    for (_, run) in groups(ctx, group) {
        for &e in run {
            out.data[e as usize] = run.len() as f64;
        }
    }
    out
}

/// Routes each destination's adjoint to the first edge of its group attaining the maximum.
fn max_grad(ctx: &Ctx, group: AggGroup, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    if x.rows != ctx.graph.num_edges() || dy.rows != ctx.graph.num_nodes() {
        return Err(internal("max gradient needs an edge value and a node adjoint".into()));
    }
    let width = x.row_len();
    let mut out = Tensor::zeros(x.rows, x.shape.clone());
    for (v, run) in groups(ctx, group) {
        for j in 0..width {
            let at = |e: &u32| x.row(*e as usize)[j];
            let max = run.iter().map(at).fold(f64::NEG_INFINITY, f64::max);
            if let Some(&e) = run.iter().find(|e| at(e) == max) {
                out.row_mut(e as usize)[j] = dy.row(v)[j];
            }
        }
    }
    Ok(out)
}

/// Elements `start..start + len` of the last axis of each row.
fn narrow(x: &Tensor, start: usize, len: usize) -> Result<Tensor> {
    let last = x.shape.dims().last().copied().unwrap_or(0);
    if len == 0 || start + len > last {
        return Err(internal(format!(
            "cannot narrow an axis of {last} to {start}..{}",
            start + len
        )));
    }
    let mut dims = x.shape.dims().to_vec();
    if let Some(l) = dims.last_mut() {
        *l = len;
    }
    let data = x.data.chunks(last).flat_map(|c| &c[start..start + len]).copied().collect();
    Ok(Tensor { rows: x.rows, shape: Shape(dims), data })
}
