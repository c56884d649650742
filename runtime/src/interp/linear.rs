//! Row movement and weight products: gather, slice and typed linear, with the [`Select`]
//! rules by which a row picks its weight slice.

use super::{Ctx, Val};
use crate::error::{Result, RuntimeError};
use crate::tensor::Tensor;
use pigeon_ir::shape;
use pigeon_ir::{Domain, Endpoint, Index, Select};

fn internal(m: String) -> RuntimeError {
    RuntimeError::Internal(m)
}

/// A tensor whose row `i` is row `map[i]` of `x`.
fn take_rows(x: &Tensor, map: &[usize]) -> Tensor {
    let mut data = Vec::with_capacity(map.len() * x.row_len());
    for &r in map {
        data.extend_from_slice(x.row(r));
    }
    Tensor { rows: map.len(), shape: x.shape.clone(), data }
}

fn to_usize(ids: &[u32]) -> Vec<usize> {
    ids.iter().map(|&i| i as usize).collect()
}

/// The node at endpoint `ep` of each edge.
fn edge_nodes<'g>(ctx: &Ctx<'g>, ep: Endpoint) -> &'g [u32] {
    match ep {
        Endpoint::Src => &ctx.graph.src,
        Endpoint::Dst => &ctx.graph.dst,
    }
}

/// Rows of a `to` value reading rows of `x` through `index`.
pub(super) fn gather(ctx: &Ctx, x: Val, index: Index, to: Domain) -> Result<Tensor> {
    let (from, map) = gather_map(ctx, index, to)?;
    if x.domain != from {
        return Err(internal(format!(
            "gather by {index} reads a {from} value, got a {} value",
            x.domain
        )));
    }
    Ok(take_rows(x.t, &map))
}

/// For a gather by `index` producing a `to` value: the domain it reads, and for each result
/// row the row it reads.
pub(super) fn gather_map(ctx: &Ctx, index: Index, to: Domain) -> Result<(Domain, Vec<usize>)> {
    Ok(match (index, to) {
        (Index::Node(ep), Domain::Edge) => (Domain::Node, to_usize(edge_nodes(ctx, ep))),
        (Index::Node(ep) | Index::CompactNode(ep), Domain::Compact(c)) if ep == c => {
            (Domain::Node, to_usize(&ctx.compact(ep).node))
        }
        (Index::EdgeToCompact(ep), Domain::Edge) => {
            (Domain::Compact(ep), to_usize(&ctx.compact(ep).edge_row))
        }
        _ => return Err(internal(format!("gather by {index} cannot produce a {to} value"))),
    })
}

/// For each row of a `rows` value, the row of the weight-like `w` domain it selects by `by`.
pub(super) fn selection(ctx: &Ctx, rows: Domain, by: Select, w: Domain) -> Result<Vec<usize>> {
    pigeon_ir::infer::check_select(rows, &w, by).map_err(internal)?;
    let n = ctx.rows(rows);
    let g = ctx.graph;
    let ntype = |v: u32| ctx.node_type[v as usize] as usize;
    let sel: Vec<usize> = match (by, rows) {
        (Select::Same, _) if w == Domain::Shared => vec![0; n],
        (Select::Same, _) => (0..n).collect(),
        (Select::Relation, Domain::Edge) => to_usize(&g.rel),
        (Select::Relation, Domain::Compact(ep)) => to_usize(&ctx.compact(ep).rel),
        (Select::NodeType, _) => ctx.node_type.iter().map(|&t| t as usize).collect(),
        (Select::SrcType, Domain::Edge) => g.src.iter().map(|&v| ntype(v)).collect(),
        (Select::DstType, Domain::Edge) => g.dst.iter().map(|&v| ntype(v)).collect(),
        (Select::SrcType, Domain::Compact(Endpoint::Src))
        | (Select::DstType, Domain::Compact(Endpoint::Dst)) => {
            let ep = if by == Select::SrcType { Endpoint::Src } else { Endpoint::Dst };
            ctx.compact(ep).node.iter().map(|&v| ntype(v)).collect()
        }
        (Select::SrcType | Select::DstType, Domain::Compact(ep)) => other_end_types(ctx, by, ep)?,
        (Select::SrcType | Select::DstType, Domain::Relation) => {
            let ep = if by == Select::SrcType { Endpoint::Src } else { Endpoint::Dst };
            to_usize(&ctx.graph.relation_end_types(ep)?)
        }
        _ => return Err(internal(format!("a {rows} row cannot select by {by}"))),
    };
    let limit = ctx.rows(w);
    if let Some(&bad) = sel.iter().find(|&&s| s >= limit) {
        return Err(RuntimeError::InvalidGraph(format!(
            "selecting by {by} reads row {bad} of a {w} weight, which has {limit} rows"
        )));
    }
    Ok(sel)
}

/// The type of the endpoint a compact row is *not* keyed by, known only from its relation's
/// declared type pair.
fn other_end_types(ctx: &Ctx, by: Select, ep: Endpoint) -> Result<Vec<usize>> {
    let table = ctx.compact(ep);
    let end = if by == Select::SrcType { Endpoint::Src } else { Endpoint::Dst };
    let types = ctx.graph.relation_end_types(end)?;
    Ok(table.rel.iter().map(|&r| types[r as usize] as usize).collect())
}

/// The weight-like `w`'s slice per row of a `domain` value.
pub(super) fn slice(ctx: &Ctx, w: Val, by: Select, domain: Domain) -> Result<Tensor> {
    if !w.domain.is_weight_like() {
        return Err(internal(format!("slice of a {} value", w.domain)));
    }
    let sel = selection(ctx, domain, by, w.domain)?;
    Ok(take_rows(w.t, &sel))
}

/// Each row of `x` times the slice of `w` it selects by `by`.
pub(super) fn linear(ctx: &Ctx, x: Val, w: Val, by: Select) -> Result<Tensor> {
    let (out_shape, form) = shape::linear(&x.t.shape, &w.t.shape)
        .ok_or_else(|| internal(format!("cannot multiply {} by {}", x.t.shape, w.t.shape)))?;
    let sel = selection(ctx, x.domain, by, w.domain)?;
    let mut out = Tensor::zeros(x.t.rows, out_shape);
    super::dense::linear(x.t, w.t, &sel[..x.t.rows.min(sel.len())], &form, &mut out);
    Ok(out)
}
