//! The cost model of the reordering pass: what an instruction costs on a given graph.
//!
//! ```text
//! cost(inst) = rows(inst) * work_per_row(inst)            (arithmetic)
//!            + BYTES_PER_ELEMENT * rows(inst) * numel(inst) (memory written)
//!            + PER_INSTRUCTION                               (launch / bookkeeping)
//! ```
//!
//! `rows` is the number of rows of the result's domain on this graph
//! ([`GraphStats::rows`]: nodes, edges, compact rows, relations, node types, or 1 for shared),
//! `numel` the elements per row. `work_per_row` counts multiply-adds for contractions and one
//! operation per element otherwise:
//!
//! | operator | work per row |
//! |---|---|
//! | `linear x, w` | `batch * k * n` of its contraction form (`k * n` for the plain form) |
//! | `dot a, b` | `numel(result) * k` (`k` the contracted extent) |
//! | `unary`, `binary` | `numel` |
//! | `softmax` | `3 * numel` (max, exponentials and sum, division) |
//! | `aggregate` | `numel` per incoming edge: `edges * numel` in all, counted on the edges |
//! | `gather`, `concat` | 0 (data movement: only the memory term) |
//! | `view`, `slice`, `input`, `weight`, `const` | free: no arithmetic and nothing written |
//!
//! A `slice` is free because no kernel materialises it: a GEMM selects its weight segment and a
//! traversal reads the weight row its edge selects (`Select` in the plan IR). Charging it would
//! make the pass remove slices for their own sake (e.g. trade `dot(z, a[relation])` for
//! `x @ M[relation]` even where `z` is computed anyway).
//!
//! So a product in a weight domain costs once per relation (`474 * K * N * H` for 474
//! relations), while the same product per edge costs `edges * K * N * H`: which form is cheaper
//! depends on the graph. The constant term is strictly positive, so that a cycle of e-nodes never
//! looks as cheap as a path out of it, and fewer instructions win a tie.

use super::lang::{op_of, Graph, RNode};
use pigeon_ir::shape::{self, LinearForm};
use pigeon_ir::{Domain, GraphStats, Op, Type};

/// Bytes of one element (kernels compute in `f32`).
pub const BYTES_PER_ELEMENT: f64 = 4.0;

/// Fixed cost of every instruction.
pub const PER_INSTRUCTION: f64 = 1.0;

/// Multiply-adds of one contraction `x @ w` of these shapes (0 when they do not fit).
fn linear_work(x: &pigeon_ir::Shape, w: &pigeon_ir::Shape) -> f64 {
    match shape::linear(x, w) {
        Some((_, LinearForm::Plain { k, n })) => (k * n) as f64,
        Some((_, LinearForm::Batched { batch, k, n } | LinearForm::Broadcast { batch, k, n })) => {
            (batch * k * n) as f64
        }
        None => 0.0,
    }
}

/// The cost of computing `op` into a value of type `ty` from operands of types `args`.
pub fn op_cost(stats: &GraphStats, op: &Op, ty: &Type, args: &[Type]) -> f64 {
    let rows = stats.rows(ty.domain) as f64;
    let numel = ty.shape.numel() as f64;
    let written = BYTES_PER_ELEMENT * rows * numel;
    let work = match op {
        Op::Input { .. } | Op::Weight(_) | Op::Const(_) | Op::View { .. } | Op::Slice { .. } => {
            return PER_INSTRUCTION;
        }
        Op::Linear { .. } => match args {
            [x, w] => rows * linear_work(&x.shape, &w.shape),
            _ => 0.0,
        },
        Op::Dot { .. } => {
            let k = args.first().and_then(|a| a.shape.dims().last().copied()).unwrap_or(0);
            rows * numel * k as f64
        }
        Op::Unary { .. } | Op::Binary { .. } => rows * numel,
        Op::EdgeSoftmax { .. } => 3.0 * rows * numel,
        Op::Aggregate { .. } => stats.rows(Domain::Edge) as f64 * numel,
        Op::Gather { .. } | Op::Concat { .. } => 0.0,
        Op::LinearGrad { .. } => match args {
            [x, dy] => {
                stats.rows(x.domain) as f64 * x.shape.numel() as f64 * dy.shape.numel() as f64
            }
            _ => 0.0,
        },
        // Row-by-row derivative operators: one pass over their operand.
        _ => args.first().map_or(rows, |a| stats.rows(a.domain) as f64) * numel,
    };
    work + written + PER_INSTRUCTION
}

/// The cost of e-node `n` (infinite when it or an operand has no type).
pub fn node_cost(g: &Graph, stats: &GraphStats, n: &RNode) -> f64 {
    let args: Option<Vec<Type>> = n.args.iter().map(|&c| g[c].data.clone()).collect();
    let tys: Vec<Option<Type>> = n.args.iter().map(|&c| g[c].data.clone()).collect();
    match (op_of(g, n), args, g.analysis.node_type(n, &tys)) {
        (Some(op), Some(args), Some(ty)) => op_cost(stats, op, &ty, &args),
        _ => f64::INFINITY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pigeon_ir::{DType, EntityId, Select, Shape, ValueId, WeightId};

    fn ty(domain: Domain, dims: &[usize]) -> Type {
        Type { domain, shape: Shape(dims.to_vec()), dtype: DType::F32 }
    }

    fn check(op: Op, out: Type, args: &[Type], want: f64) {
        let s = GraphStats {
            nodes: 5,
            edges: 10,
            relations: 3,
            node_types: 2,
            ..GraphStats::default()
        };
        assert_eq!(op_cost(&s, &op, &out, args), want, "{op:?}");
    }

    #[test]
    fn costs_by_hand() {
        let v = ValueId::new(0);
        let lin = Op::Linear { x: v, w: v, by: Select::Relation };
        // 10 edges x (8 x 4) multiply-adds + 4 bytes x 10 x 4 written + 1
        check(
            lin,
            ty(Domain::Edge, &[4]),
            &[ty(Domain::Edge, &[8]), ty(Domain::Relation, &[8, 4])],
            481.0,
        );
        // 3 relations x (8 x 32 x 2) + 4 x 3 x 16 + 1: a weight product is paid per relation
        let prod = Op::Linear { x: v, w: v, by: Select::Same };
        let args = [ty(Domain::Relation, &[8, 32]), ty(Domain::Shared, &[32, 2])];
        check(prod, ty(Domain::Relation, &[8, 2]), &args, 1729.0);
        // 10 x (2 x 16) + 4 x 10 x 2 + 1
        let dot = Op::Dot { a: v, b: v };
        let args = [ty(Domain::Edge, &[2, 16]), ty(Domain::Edge, &[2, 16])];
        check(dot, ty(Domain::Edge, &[2]), &args, 401.0);
        // the work of an aggregation is per edge, what it writes per node: 10 x 4 + 4 x 5 x 4 + 1
        let agg =
            Op::Aggregate { op: pigeon_ir::AggOp::Sum, group: pigeon_ir::AggGroup::All, x: v };
        check(agg, ty(Domain::Node, &[4]), &[ty(Domain::Edge, &[4])], 121.0);
        // slices, views and weights are free
        let slice = Op::Slice { w: v, by: Select::Relation, domain: Domain::Edge };
        check(slice, ty(Domain::Edge, &[64]), &[ty(Domain::Relation, &[64])], 1.0);
        check(Op::Weight(WeightId::new(0)), ty(Domain::Relation, &[64, 64]), &[], 1.0);
        // a gather writes: 4 x 10 x 8 + 1
        let gather = Op::Gather { x: v, index: pigeon_ir::Index::Node(pigeon_ir::Endpoint::Src) };
        check(gather, ty(Domain::Edge, &[8]), &[ty(Domain::Node, &[8])], 321.0);
    }
}
