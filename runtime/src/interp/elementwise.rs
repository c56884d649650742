//! Element-wise binary operators, dot products and concatenation, with shape broadcasting
//! (axes aligned from the front, see `pigeon_ir::shape`) and shared operands broadcast across
//! rows.

use super::{Ctx, Val};
use crate::error::{Result, RuntimeError};
use crate::tensor::Tensor;
use pigeon_ir::infer::join_domains;
use pigeon_ir::shape::{self, broadcast_strides};
use pigeon_ir::{BinaryOp, Shape};

fn internal(m: String) -> RuntimeError {
    RuntimeError::Internal(m)
}

/// For each element of a row of shape `out` (row-major), the element of a row of shape `from`
/// it reads under broadcasting.
pub(super) fn broadcast_offsets(from: &Shape, out: &Shape) -> Vec<usize> {
    let rank = out.rank();
    let strides = broadcast_strides(from, rank);
    let dims = out.dims();
    (0..out.numel())
        .map(|flat| {
            // Decompose `flat` into coordinates, last axis fastest.
            let mut rest = flat;
            let mut offset = 0;
            for axis in (0..rank).rev() {
                offset += (rest % dims[axis]) * strides[axis];
                rest /= dims[axis];
            }
            offset
        })
        .collect()
}

/// The domain and row count of an element-wise result.
fn joined(ctx: &Ctx, parts: &[Val]) -> Result<usize> {
    let mut domain =
        parts.first().map(|p| p.domain).ok_or_else(|| internal("no operands".into()))?;
    for p in &parts[1..] {
        domain = join_domains(domain, p.domain).map_err(internal)?;
    }
    Ok(ctx.rows(domain))
}

/// `op(a, b)` element-wise.
pub(super) fn binary(ctx: &Ctx, op: BinaryOp, a: Val, b: Val) -> Result<Tensor> {
    let rows = joined(ctx, &[a, b])?;
    let out_shape = shape::broadcast(&a.t.shape, &b.t.shape).ok_or_else(|| {
        internal(format!("shapes {} and {} do not broadcast", a.t.shape, b.t.shape))
    })?;
    let ia = broadcast_offsets(&a.t.shape, &out_shape);
    let ib = broadcast_offsets(&b.t.shape, &out_shape);
    let f = |x: f64, y: f64| match op {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div => x / y,
        BinaryOp::Max => x.max(y),
    };
    let mut out = Tensor::zeros(rows, out_shape);
    for i in 0..rows {
        let (ra, rb) = (a.row(i), b.row(i));
        for (j, o) in out.row_mut(i).iter_mut().enumerate() {
            *o = f(ra[ia[j]], rb[ib[j]]);
        }
    }
    Ok(out)
}

/// `dot(a, b)`: the operands' leading axes broadcast, their last axes are summed over.
pub(super) fn dot(ctx: &Ctx, a: Val, b: Val) -> Result<Tensor> {
    let rows = joined(ctx, &[a, b])?;
    let (sa, sb) = (&a.t.shape, &b.t.shape);
    let out_shape =
        shape::dot(sa, sb).ok_or_else(|| internal(format!("cannot dot {sa} with {sb}")))?;
    let k = sa.dims()[sa.rank() - 1];
    let lead = |s: &Shape| Shape(s.dims()[..s.rank() - 1].to_vec());
    let ia = broadcast_offsets(&lead(sa), &out_shape);
    let ib = broadcast_offsets(&lead(sb), &out_shape);
    let mut out = Tensor::zeros(rows, out_shape);
    for i in 0..rows {
        let (ra, rb) = (a.row(i), b.row(i));
        for (j, o) in out.row_mut(i).iter_mut().enumerate() {
            let (xa, xb) = (&ra[ia[j] * k..(ia[j] + 1) * k], &rb[ib[j] * k..(ib[j] + 1) * k]);
            *o = xa.iter().zip(xb).map(|(x, y)| x * y).sum();
        }
    }
    Ok(out)
}

/// Concatenation along the last axis.
pub(super) fn concat(ctx: &Ctx, parts: &[Val]) -> Result<Tensor> {
    let rows = joined(ctx, parts)?;
    let shapes: Vec<&Shape> = parts.iter().map(|p| &p.t.shape).collect();
    let out_shape =
        shape::concat(&shapes).ok_or_else(|| internal("operands do not concatenate".into()))?;
    let last = |s: &Shape| s.dims()[s.rank() - 1];
    // Number of leading positions (product of all axes but the last), the same for every part.
    let lead: usize = out_shape.dims()[..out_shape.rank() - 1].iter().product();
    let mut data = Vec::with_capacity(rows * out_shape.numel());
    for i in 0..rows {
        for l in 0..lead {
            for p in parts {
                let w = last(&p.t.shape);
                data.extend_from_slice(&p.row(i)[l * w..(l + 1) * w]);
            }
        }
    }
    Ok(Tensor { rows, shape: out_shape, data })
}
