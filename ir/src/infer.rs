//! Type inference for one instruction from the types of its operands: the single definition of
//! each operator's typing rule, used by the frontend's lowering, the text parser and the
//! verifier alike.

use crate::inter::{Domain, Endpoint, Index, Op, Select, Shape, Type};
use crate::shape;

/// The result type of `op`, given the type of each value it may refer to, or a message saying
/// why the operands do not fit. `weight_ty` gives the type of a weight's value.
///
/// `Op::Input` and `Op::Weight` carry no operand types; their types come from declarations, so
/// for them this returns `Err`.
pub fn infer_type(op: &Op, ty: &dyn Fn(crate::ValueId) -> Option<Type>) -> Result<Type, String> {
    let get = |v: crate::ValueId| ty(v).ok_or_else(|| format!("{v} is not defined before use"));
    match op {
        Op::Input { .. } | Op::Weight(_) => {
            Err("inputs and weights take their type from their declaration".into())
        }
        Op::Const(_) => {
            Ok(Type { domain: Domain::Shared, shape: Shape::scalar(), dtype: crate::DType::F32 })
        }
        Op::Gather { x, index } => {
            let t = get(*x)?;
            let (from, to) = match index {
                Index::Node(_) => (Domain::Node, Domain::Edge),
                Index::EdgeToCompact(e) => (Domain::Compact(*e), Domain::Edge),
                Index::CompactNode(e) => (Domain::Node, Domain::Compact(*e)),
            };
            if t.domain != from {
                return Err(format!(
                    "gather by {index} reads a {from} value, but {x} is {}",
                    t.domain
                ));
            }
            Ok(Type { domain: to, ..t })
        }
        Op::Slice { w, by, domain } => {
            let t = get(*w)?;
            check_select(*domain, &t.domain, *by)?;
            Ok(Type { domain: *domain, ..t })
        }
        Op::Linear { x, w, by } => {
            let tx = get(*x)?;
            let tw = get(*w)?;
            check_select(tx.domain, &tw.domain, *by)?;
            let (out, _) = shape::linear(&tx.shape, &tw.shape).ok_or_else(|| {
                format!("cannot multiply a {} row by a {} weight", tx.shape, tw.shape)
            })?;
            Ok(Type { domain: tx.domain, shape: out, dtype: tx.dtype })
        }
        Op::Unary { x, .. } => get(*x),
        Op::Binary { a, b, .. } => {
            let (ta, tb) = (get(*a)?, get(*b)?);
            let domain = join_domains(ta.domain, tb.domain)?;
            let out = shape::broadcast(&ta.shape, &tb.shape)
                .ok_or_else(|| format!("shapes {} and {} do not broadcast", ta.shape, tb.shape))?;
            Ok(Type { domain, shape: out, dtype: ta.dtype })
        }
        Op::Dot { a, b } => {
            let (ta, tb) = (get(*a)?, get(*b)?);
            let domain = join_domains(ta.domain, tb.domain)?;
            let out = shape::dot(&ta.shape, &tb.shape).ok_or_else(|| {
                format!("dot needs matching last axes, got {} and {}", ta.shape, tb.shape)
            })?;
            Ok(Type { domain, shape: out, dtype: ta.dtype })
        }
        Op::View { x, shape: s } => {
            let t = get(*x)?;
            if t.shape.numel() != s.numel() {
                return Err(format!(
                    "cannot view {} ({} elements) as {s} ({} elements)",
                    t.shape,
                    t.shape.numel(),
                    s.numel()
                ));
            }
            Ok(Type { shape: s.clone(), ..t })
        }
        Op::Concat { xs } => {
            let tys = xs.iter().map(|&v| get(v)).collect::<Result<Vec<_>, _>>()?;
            let first = tys.first().ok_or("concat needs at least one operand")?;
            let mut domain = first.domain;
            for t in &tys[1..] {
                domain = join_domains(domain, t.domain)?;
            }
            let shapes: Vec<&Shape> = tys.iter().map(|t| &t.shape).collect();
            let out = shape::concat(&shapes).ok_or_else(|| {
                let list: Vec<String> = shapes.iter().map(|s| s.to_string()).collect();
                format!("cannot concatenate shapes {} along the last axis", list.join(", "))
            })?;
            Ok(Type { domain, shape: out, dtype: first.dtype })
        }
        Op::EdgeSoftmax { x } => {
            let t = get(*x)?;
            if t.domain != Domain::Edge {
                return Err(format!("softmax takes an edge value, got a {} value", t.domain));
            }
            Ok(t)
        }
        Op::Aggregate { x, .. } => {
            let t = get(*x)?;
            if t.domain != Domain::Edge {
                return Err(format!("aggregation takes an edge value, got a {} value", t.domain));
            }
            Ok(Type { domain: Domain::Node, ..t })
        }
        op => infer_derivative(op, &get),
    }
}

/// The typing rules of the derivative operators (see [`Op::is_derivative`]).
fn infer_derivative(
    op: &Op,
    get: &dyn Fn(crate::ValueId) -> Result<Type, String>,
) -> Result<Type, String> {
    match op {
        Op::Scatter { x, index } => {
            let t = get(*x)?;
            let (from, to) = match index {
                Index::Node(e) if t.domain == Domain::Compact(*e) => (t.domain, Domain::Node),
                Index::Node(_) => (Domain::Edge, Domain::Node),
                Index::EdgeToCompact(e) => (Domain::Edge, Domain::Compact(*e)),
                Index::CompactNode(e) => (Domain::Compact(*e), Domain::Node),
            };
            if t.domain != from {
                return Err(format!(
                    "scatter by {index} takes a {from} value, but {x} is {}",
                    t.domain
                ));
            }
            Ok(Type { domain: to, ..t })
        }
        Op::SliceSum { x, by, domain } => {
            let t = get(*x)?;
            if !domain.is_weight_like() {
                return Err(format!("slice sums into a weight-like domain, not {domain}"));
            }
            check_select(t.domain, domain, *by)?;
            Ok(Type { domain: *domain, ..t })
        }
        Op::SumTo { x, shape: s } => {
            let t = get(*x)?;
            if shape::broadcast(s, &t.shape).as_ref() != Some(&t.shape) {
                return Err(format!(
                    "cannot sum {} down to {s}: {s} does not broadcast to it",
                    t.shape
                ));
            }
            Ok(Type { shape: s.clone(), ..t })
        }
        Op::Transpose { x } => {
            let mut t = get(*x)?;
            let r = t.shape.rank();
            if r < 2 {
                return Err(format!("transpose needs two axes, got {}", t.shape));
            }
            t.shape.0.swap(r - 2, r - 1);
            Ok(t)
        }
        Op::LinearGrad { x, dy, by, domain, shape: ws } => {
            let (tx, tg) = (get(*x)?, get(*dy)?);
            check_select(tx.domain, domain, *by)?;
            if tx.domain != tg.domain {
                return Err(format!(
                    "linear gradient rows differ: {} and {}",
                    tx.domain, tg.domain
                ));
            }
            match shape::linear(&tx.shape, ws) {
                Some((out, _)) if out == tg.shape => {}
                _ => {
                    return Err(format!(
                        "a {} row times a {ws} weight does not give the adjoint's {}",
                        tx.shape, tg.shape
                    ))
                }
            }
            Ok(Type { domain: *domain, shape: ws.clone(), dtype: tx.dtype })
        }
        Op::UnaryGrad { x, dy, .. } => {
            let (tx, tg) = (get(*x)?, get(*dy)?);
            if tx.domain != tg.domain || tx.shape != tg.shape {
                return Err(format!("unary gradient operands differ: {tx} and {tg}"));
            }
            Ok(tg)
        }
        Op::GroupSize { .. } => {
            Ok(Type { domain: Domain::Edge, shape: Shape::scalar(), dtype: crate::DType::F32 })
        }
        Op::MaxGrad { x, dy, .. } => {
            let (tx, tg) = (get(*x)?, get(*dy)?);
            if tx.domain != Domain::Edge || tg.domain != Domain::Node || tx.shape != tg.shape {
                return Err(format!("max gradient needs an edge value and a node adjoint of one shape, got {tx} and {tg}"));
            }
            Ok(tx)
        }
        Op::Narrow { x, start, len } => {
            let mut t = get(*x)?;
            let last = t.shape.0.last_mut().ok_or("narrow needs an axis")?;
            if *len == 0 || start.checked_add(*len).is_none_or(|end| end > *last) {
                return Err(format!(
                    "cannot take {len} elements from {start} of an axis of {last}"
                ));
            }
            *last = *len;
            Ok(t)
        }
        _ => Err("not a derivative operator".into()),
    }
}

/// The domain of an element-wise result: equal domains, or a shared operand broadcast to the
/// other's domain.
pub fn join_domains(a: Domain, b: Domain) -> Result<Domain, String> {
    if a == b || b == Domain::Shared {
        Ok(a)
    } else if a == Domain::Shared {
        Ok(b)
    } else {
        Err(format!("cannot combine a {a} value with a {b} value"))
    }
}

/// Whether rows of domain `rows` may select rows of a weight-like domain `w` by `by`.
pub fn check_select(rows: Domain, w: &Domain, by: Select) -> Result<(), String> {
    let ok = match by {
        Select::Same => *w == Domain::Shared || *w == rows,
        Select::Relation => rows.is_edge_like() && *w == Domain::Relation,
        Select::NodeType => rows == Domain::Node && *w == Domain::NodeType,
        // A relation row selects by the declared type of its relation's endpoint (legal on
        // graphs whose relations each connect one node-type pair; the runtime checks).
        Select::SrcType | Select::DstType => {
            (rows.is_edge_like() || rows == Domain::Relation) && *w == Domain::NodeType
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{rows} rows cannot select a {w} weight by {by}"))
    }
}

/// The endpoint whose node a compact domain's rows are keyed by.
pub fn compact_endpoint(d: Domain) -> Option<Endpoint> {
    match d {
        Domain::Compact(e) => Some(e),
        _ => None,
    }
}
