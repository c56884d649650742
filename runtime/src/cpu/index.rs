//! Row indexing: how an iteration row of one row space finds its row in a buffer of another
//! (`RowIndex`, `Select`), resolved once per kernel into a [`RowMap`] that the inner loops read.

use super::Env;
use crate::error::{Result, RuntimeError};
use pigeon_ir::plan::{RowIndex, RowSpace};
use pigeon_ir::{Endpoint, Select, Shape};
use std::borrow::Cow;

/// A resolved row mapping `i -> row`.
#[derive(Clone, Debug)]
pub(crate) enum RowMap<'a> {
    /// `i -> i`.
    Identity,
    /// `i -> 0`.
    Zero,
    /// `i -> table[i]`.
    Table(&'a [u32]),
    /// `i -> outer[inner[i]]`.
    Compose(&'a [u32], Cow<'a, [u32]>),
    /// `i -> table[i]`, a table made for this kernel (a relation's declared endpoint type).
    Owned(Vec<u32>),
}

impl RowMap<'_> {
    /// The row read by iteration row `i`.
    #[inline]
    pub fn get(&self, i: usize) -> usize {
        match self {
            RowMap::Identity => i,
            RowMap::Zero => 0,
            RowMap::Table(t) => t[i] as usize,
            RowMap::Compose(inner, outer) => outer[inner[i] as usize] as usize,
            RowMap::Owned(t) => t[i] as usize,
        }
    }
}

fn internal(m: String) -> RuntimeError {
    RuntimeError::Internal(m)
}

fn endpoint_nodes<'a>(env: &Env<'a>, ep: Endpoint) -> &'a [u32] {
    match ep {
        Endpoint::Src => &env.graph.src,
        Endpoint::Dst => &env.graph.dst,
    }
}

/// Resolves `index` for iteration rows of `space` reading a buffer with rows `target`.
pub(crate) fn resolve<'a>(
    env: &Env<'a>,
    index: RowIndex,
    space: RowSpace,
    target: RowSpace,
) -> Result<RowMap<'a>> {
    let mismatch =
        || internal(format!("a {space:?} row cannot read a {target:?} buffer by {index:?}"));
    match index {
        RowIndex::This | RowIndex::Select(Select::Same) => {
            if target == RowSpace::One {
                Ok(RowMap::Zero)
            } else if target == space {
                Ok(RowMap::Identity)
            } else {
                Err(mismatch())
            }
        }
        RowIndex::Node(ep) => match (space, target) {
            (RowSpace::Edges, RowSpace::Nodes) => Ok(RowMap::Table(endpoint_nodes(env, ep))),
            (RowSpace::Compact(c), RowSpace::Nodes) if c == ep => {
                Ok(RowMap::Table(&env.compact(ep)?.node))
            }
            _ => Err(mismatch()),
        },
        RowIndex::EdgeToCompact(ep) => match (space, target) {
            (RowSpace::Edges, RowSpace::Compact(c)) if c == ep => {
                Ok(RowMap::Table(&env.compact(ep)?.edge_row))
            }
            _ => Err(mismatch()),
        },
        RowIndex::Select(sel) => {
            select(env, sel, space, target).and_then(|m| m.ok_or_else(mismatch))
        }
    }
}

/// The slice a `space` row selects by `sel` in a weight-like buffer with rows `target`.
fn select<'a>(
    env: &Env<'a>,
    sel: Select,
    space: RowSpace,
    target: RowSpace,
) -> Result<Option<RowMap<'a>>> {
    let types: &'a [u32] = &env.layouts.node_type;
    Ok(Some(match (sel, space, target) {
        (Select::Same, ..) => return Ok(None),
        (_, RowSpace::One, RowSpace::One) | (_, _, RowSpace::One) => RowMap::Zero,
        (Select::Relation, RowSpace::Edges, RowSpace::Relations) => RowMap::Table(&env.graph.rel),
        (Select::Relation, RowSpace::Compact(c), RowSpace::Relations) => {
            RowMap::Table(&env.compact(c)?.rel)
        }
        (Select::Relation, RowSpace::Relations, RowSpace::Relations)
        | (Select::NodeType, RowSpace::NodeTypes, RowSpace::NodeTypes) => RowMap::Identity,
        (Select::NodeType, RowSpace::Nodes, RowSpace::NodeTypes) => RowMap::Table(types),
        (Select::SrcType | Select::DstType, RowSpace::Edges, RowSpace::NodeTypes) => {
            let ep = if sel == Select::SrcType { Endpoint::Src } else { Endpoint::Dst };
            RowMap::Compose(endpoint_nodes(env, ep), Cow::Borrowed(types))
        }
        (Select::SrcType | Select::DstType, RowSpace::Compact(c), RowSpace::NodeTypes) => {
            let ep = if sel == Select::SrcType { Endpoint::Src } else { Endpoint::Dst };
            let table = env.compact(c)?;
            if ep == c {
                RowMap::Compose(&table.node, Cow::Borrowed(types))
            } else {
                RowMap::Compose(&table.rel, Cow::Owned(env.graph.relation_end_types(ep)?))
            }
        }
        (Select::SrcType | Select::DstType, RowSpace::Relations, RowSpace::NodeTypes) => {
            let ep = if sel == Select::SrcType { Endpoint::Src } else { Endpoint::Dst };
            RowMap::Owned(env.graph.relation_end_types(ep)?)
        }
        _ => return Ok(None),
    }))
}

/// For each element of a row of shape `out` (row-major), the element of a row of shape `from`
/// it reads under broadcasting (axes aligned from the front, as `pigeon_ir::shape`).
pub(crate) fn broadcast_offsets(from: &Shape, out: &Shape) -> Vec<usize> {
    let rank = out.rank();
    let strides = pigeon_ir::shape::broadcast_strides(from, rank);
    let dims = out.dims();
    (0..out.numel())
        .map(|flat| {
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
