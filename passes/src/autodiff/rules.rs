//! The derivative rule of every operator, one function each: given an instruction `y = op(..)`
//! and the adjoint `g` of `y`, the contributions to the adjoints of its operands (before they
//! are summed down to each operand's type by the caller). `needs[x]` says whether operand `x`
//! wants an adjoint at all; rules skip the work for operands that do not.
//!
//! | forward | adjoint contributions |
//! |---|---|
//! | `gather x by dst` (edge rows) | `aggregate sum g` |
//! | `gather x by i` (others) | `scatter g by i` |
//! | `slice w by s to d` | `slice_sum g by s to domain(w)` |
//! | `linear x, w by s` | `x`: `linear g, transpose(w) by s`; `w`: `linear_grad x, g by s` |
//! | `f x` (unary) | `grad f x, g` |
//! | `a + b`, `a - b` | `g`, `±g` |
//! | `a * b` | `g * b`, `g * a` |
//! | `a / b` | `g / b`, `-(g * y) / b` |
//! | `max a, b` | `grad relu (a - b), g` and `g` minus that (ties go to `b`) |
//! | `dot a, b` | `g[.., None] * b`, `g[.., None] * a` |
//! | `view x` | `view g` as `x`'s shape |
//! | `concat xs` | `narrow g` at each operand's place |
//! | `softmax x` | `y * (g - dst.(sum(y * g)))` |
//! | `aggregate sum x` (any grouping) | `dst.g` |
//! | `aggregate mean x` | `dst.g / group_size` |
//! | `aggregate max x` | `max_grad x, g` |

use super::Emitter;
use crate::PassError;
use pigeon_ir::shape::LinearForm;
use pigeon_ir::{
    AggGroup, AggOp, BinaryOp, Domain, Endpoint, EntityId, Index, Op, Shape, UnaryOp, ValueId,
};

/// `(operand, contribution)` pairs.
type Contributions = Vec<(ValueId, ValueId)>;

/// The adjoint contributions of instruction `y = op` with adjoint `g`.
pub(super) fn adjoints(
    e: &mut Emitter,
    y: ValueId,
    op: &Op,
    g: ValueId,
    needs: &[bool],
) -> Result<Contributions, PassError> {
    let need = |x: ValueId| needs.get(x.index()).copied().unwrap_or(false);
    let mut out = Vec::new();
    match op {
        Op::Input { .. } | Op::Weight(_) | Op::Const(_) => {}
        // Summing an edge value into destinations is an aggregation, which fusion keeps in
        // registers; other gathers are transposed by a scatter.
        Op::Gather { x, index: Index::Node(Endpoint::Dst) } if e.ty(g).domain == Domain::Edge => {
            let sum = Op::Aggregate { op: AggOp::Sum, group: AggGroup::All, x: g };
            out.push((*x, e.append(sum, None)?))
        }
        Op::Gather { x, index } => {
            out.push((*x, e.append(Op::Scatter { x: g, index: *index }, None)?))
        }
        Op::Slice { w, by, .. } => {
            let domain = e.ty(*w).domain;
            let c = if domain == e.ty(g).domain {
                g
            } else {
                e.append(Op::SliceSum { x: g, by: *by, domain }, None)?
            };
            out.push((*w, c));
        }
        Op::Linear { x, w, by } => {
            if need(*x) {
                out.push((*x, linear_input(e, *x, *w, *by, g)?));
            }
            if need(*w) {
                let tw = e.ty(*w);
                let op =
                    Op::LinearGrad { x: *x, dy: g, by: *by, domain: tw.domain, shape: tw.shape };
                out.push((*w, e.append(op, None)?));
            }
        }
        Op::Unary { op, x } => {
            out.push((*x, e.append(Op::UnaryGrad { op: *op, x: *x, dy: g }, None)?))
        }
        Op::Binary { op, a, b } => out = binary(e, y, *op, *a, *b, g, need)?,
        Op::Dot { a, b } => {
            if need(*a) {
                out.push((*a, dot_operand(e, g, *b)?));
            }
            if need(*b) {
                out.push((*b, dot_operand(e, g, *a)?));
            }
        }
        Op::View { x, .. } => {
            let shape = e.ty(*x).shape;
            out.push((*x, e.append(Op::View { x: g, shape }, None)?));
        }
        Op::Concat { xs } => {
            let mut start = 0;
            for &x in xs {
                let len = e.ty(x).shape.dims().last().copied().unwrap_or(0);
                if need(x) {
                    out.push((x, e.append(Op::Narrow { x: g, start, len }, None)?));
                }
                start += len;
            }
        }
        Op::EdgeSoftmax { x } => {
            let yg = e.append(Op::Binary { op: BinaryOp::Mul, a: y, b: g }, None)?;
            let s =
                e.append(Op::Aggregate { op: AggOp::Sum, group: AggGroup::All, x: yg }, None)?;
            let sd = e.append(Op::Gather { x: s, index: Index::Node(Endpoint::Dst) }, None)?;
            let d = e.append(Op::Binary { op: BinaryOp::Sub, a: g, b: sd }, None)?;
            out.push((*x, e.append(Op::Binary { op: BinaryOp::Mul, a: y, b: d }, None)?));
        }
        Op::Aggregate { op, group, x } => {
            let c = match op {
                AggOp::Sum => {
                    e.append(Op::Gather { x: g, index: Index::Node(Endpoint::Dst) }, None)?
                }
                AggOp::Mean => {
                    let gd =
                        e.append(Op::Gather { x: g, index: Index::Node(Endpoint::Dst) }, None)?;
                    let n = e.append(Op::GroupSize { group: *group }, None)?;
                    e.append(Op::Binary { op: BinaryOp::Div, a: gd, b: n }, None)?
                }
                AggOp::Max => e.append(Op::MaxGrad { group: *group, x: *x, dy: g }, None)?,
            };
            out.push((*x, c));
        }
        op => {
            return Err(PassError::Unsupported(format!(
                "no derivative rule for `{}`",
                pigeon_ir::text::op(op)
            )))
        }
    }
    Ok(out.into_iter().filter(|(x, _)| need(*x)).collect())
}

/// The adjoint of a linear's row operand: `g` times the transposed weight, in the linear's
/// own contraction form.
fn linear_input(
    e: &mut Emitter,
    x: ValueId,
    w: ValueId,
    by: pigeon_ir::Select,
    g: ValueId,
) -> Result<ValueId, PassError> {
    let (tx, tw) = (e.ty(x), e.ty(w));
    let (_, form) = pigeon_ir::shape::linear(&tx.shape, &tw.shape).ok_or_else(|| {
        PassError::Internal { pass: "autodiff", message: format!("{x} and {w} do not contract") }
    })?;
    let (w2, g2) = match form {
        LinearForm::Plain { k, n } => {
            let w2 = view(e, w, Shape(vec![k, n]))?;
            (w2, view(e, g, Shape(vec![n]))?)
        }
        LinearForm::Batched { .. } | LinearForm::Broadcast { .. } => (w, g),
    };
    let wt = e.append(Op::Transpose { x: w2 }, None)?;
    e.append(Op::Linear { x: g2, w: wt, by }, None)
}

/// `x` viewed as `shape`, or `x` itself when it has that shape already.
fn view(e: &mut Emitter, x: ValueId, shape: Shape) -> Result<ValueId, PassError> {
    if e.ty(x).shape == shape {
        Ok(x)
    } else {
        e.append(Op::View { x, shape }, None)
    }
}

/// The adjoint of one operand of `dot(a, b)`, given the other operand: `g[.., None] * other`,
/// with a vector `other` viewed as `[1.., K]` so that it broadcasts over the leading axes.
fn dot_operand(e: &mut Emitter, g: ValueId, other: ValueId) -> Result<ValueId, PassError> {
    let gs = e.ty(g).shape;
    let os = e.ty(other).shape;
    let mut gdims = gs.dims().to_vec();
    gdims.push(1);
    let gv = view(e, g, Shape(gdims))?;
    let ov = if os.rank() == 1 && gs.rank() > 0 {
        let mut dims = vec![1; gs.rank()];
        dims.extend_from_slice(os.dims());
        view(e, other, Shape(dims))?
    } else {
        other
    };
    e.append(Op::Binary { op: BinaryOp::Mul, a: gv, b: ov }, None)
}

/// The contributions of `y = op(a, b)`.
fn binary(
    e: &mut Emitter,
    y: ValueId,
    op: BinaryOp,
    a: ValueId,
    b: ValueId,
    g: ValueId,
    need: impl Fn(ValueId) -> bool,
) -> Result<Contributions, PassError> {
    let bin = |e: &mut Emitter, op, a, b| e.append(Op::Binary { op, a, b }, None);
    let neg = |e: &mut Emitter, x| e.append(Op::Unary { op: UnaryOp::Neg, x }, None);
    let mut out = Vec::new();
    match op {
        BinaryOp::Add => out.extend([(a, g), (b, g)]),
        BinaryOp::Sub => {
            out.push((a, g));
            if need(b) {
                out.push((b, neg(e, g)?));
            }
        }
        BinaryOp::Mul => {
            if need(a) {
                out.push((a, bin(e, BinaryOp::Mul, g, b)?));
            }
            if need(b) {
                out.push((b, bin(e, BinaryOp::Mul, g, a)?));
            }
        }
        BinaryOp::Div => {
            if need(a) {
                out.push((a, bin(e, BinaryOp::Div, g, b)?));
            }
            if need(b) {
                let gy = bin(e, BinaryOp::Mul, g, y)?;
                let q = bin(e, BinaryOp::Div, gy, b)?;
                out.push((b, neg(e, q)?));
            }
        }
        BinaryOp::Max => {
            let diff = bin(e, BinaryOp::Sub, a, b)?;
            let ga = e.append(Op::UnaryGrad { op: UnaryOp::Relu, x: diff, dy: g }, None)?;
            out.push((a, ga));
            if need(b) {
                out.push((b, bin(e, BinaryOp::Sub, g, ga)?));
            }
        }
    }
    Ok(out)
}
