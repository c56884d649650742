//! GEMM row segmentation, shared by the CPU and CUDA back ends: the iteration rows of a
//! [`Gemm`] grouped by the B slice they select, as an optional row `order` and `offsets`
//! (segment `s` is positions `offsets[s]..offsets[s + 1]`, each position a row id, or
//! `order[position]` when there is an order), and the CUDA tile table cut from them.
//!
//! [`classify`] names the grouping in `pigeon_codegen`'s terms ([`Segmentation`]), so the CUDA
//! back end can check it agrees with what the generated kernel expects; [`segments`] builds it.

use crate::error::{Result, RuntimeError};
use crate::graph::HeteroGraph;
use crate::layout::Layouts;
use pigeon_codegen::Segmentation;
use pigeon_ir::plan::{Gemm, RowSpace};
use pigeon_ir::Select;
use std::borrow::Cow;

/// Rows grouped by the B slice they select: segment `s` is `order[offsets[s]..offsets[s+1]]`
/// (or those row numbers when `order` is `None`) and multiplies by B row `s`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Segments<'a> {
    /// Row ids in segment order (`None`: positions are row ids).
    pub order: Option<Cow<'a, [u32]>>,
    /// `segments + 1` positions.
    pub offsets: Cow<'a, [usize]>,
}

/// How the rows of `g` (whose B operand has rows `b_rows`) are grouped: a shared B is one
/// segment, a B with the rows' own row space one segment per row, relations of edges and
/// compact rows and node types of nodes come from the graph's layouts, anything else is
/// counting-sorted by the slice each row selects.
pub(crate) fn classify(g: &Gemm, b_rows: RowSpace) -> Segmentation {
    classify_rows(g.segment, g.rows, b_rows)
}

/// [`classify`] for iteration rows `rows` selecting rows `b_rows` by `segment`.
pub(crate) fn classify_rows(segment: Select, rows: RowSpace, b_rows: RowSpace) -> Segmentation {
    if b_rows == RowSpace::One {
        return Segmentation::Single;
    }
    match (segment, rows, b_rows) {
        (Select::Same, r, b) if r == b => Segmentation::PerRow,
        (Select::Relation, RowSpace::Relations, RowSpace::Relations)
        | (Select::NodeType, RowSpace::NodeTypes, RowSpace::NodeTypes) => Segmentation::PerRow,
        (Select::Relation, RowSpace::Edges, RowSpace::Relations) => Segmentation::EdgesByRelation,
        (Select::Relation, RowSpace::Compact(ep), RowSpace::Relations) => {
            Segmentation::CompactByRelation(ep)
        }
        (Select::NodeType, RowSpace::Nodes, RowSpace::NodeTypes) => Segmentation::NodesByType,
        (sel, ..) => Segmentation::Sorted(sel),
    }
}

fn internal(m: String) -> RuntimeError {
    RuntimeError::Internal(m)
}

/// Groups `rows` iteration rows into at most `slices` segments as `kind` says; `slice_of(i)`
/// (the B slice row `i` selects) is only called for [`Segmentation::Sorted`]. Borrows the
/// layouts' tables where they already are the grouping.
pub(crate) fn segments<'a>(
    kind: Segmentation,
    graph: &'a HeteroGraph,
    layouts: &'a Layouts,
    rows: usize,
    slices: usize,
    slice_of: impl Fn(usize) -> usize,
) -> Result<Segments<'a>> {
    let segs = match kind {
        Segmentation::Single => Segments { order: None, offsets: Cow::Owned(vec![0, rows]) },
        Segmentation::PerRow => Segments { order: None, offsets: (0..=rows).collect() },
        Segmentation::EdgesByRelation => {
            let l = layouts
                .edges_by_relation()
                .ok_or_else(|| internal("the EdgesByRelation layout is not built".into()))?;
            Segments { order: Some(Cow::Borrowed(&l.order)), offsets: Cow::Borrowed(&l.offsets) }
        }
        Segmentation::CompactByRelation(ep) => {
            let t = layouts
                .compact(ep)
                .ok_or_else(|| internal(format!("compact.{ep} table not built")))?;
            Segments { order: None, offsets: Cow::Borrowed(&t.rel_offsets) }
        }
        Segmentation::NodesByType => {
            Segments { order: None, offsets: Cow::Borrowed(&graph.type_offsets) }
        }
        Segmentation::Sorted(sel) => {
            let (order, offsets) = group_rows(rows, slices, slice_of).ok_or_else(|| {
                internal(format!("a row selects a slice beyond the {slices} slices by {sel}"))
            })?;
            Segments { order: Some(Cow::Owned(order)), offsets: Cow::Owned(offsets) }
        }
    };
    if segs.offsets.len().saturating_sub(1) > slices || segs.offsets.last() != Some(&rows) {
        return Err(internal(format!(
            "segmentation {kind:?} does not fit {rows} rows and {slices} B slices"
        )));
    }
    Ok(segs)
}

/// A stable counting sort of rows `0..rows` by `slice_of(row) < slices`: the rows in segment
/// order and the `slices + 1` offsets; `None` when a row selects a slice out of range.
pub(crate) fn group_rows(
    rows: usize,
    slices: usize,
    slice_of: impl Fn(usize) -> usize,
) -> Option<(Vec<u32>, Vec<usize>)> {
    let mut offsets = vec![0usize; slices + 1];
    for i in 0..rows {
        *offsets.get_mut(slice_of(i) + 1)? += 1;
    }
    for s in 0..slices {
        offsets[s + 1] += offsets[s];
    }
    let mut next = offsets.clone();
    let mut order = vec![0u32; rows];
    for i in 0..rows {
        let s = slice_of(i);
        order[next[s]] = i as u32;
        next[s] += 1;
    }
    Some((order, offsets))
}

/// The CUDA tile table of a segmentation (`pigeon_codegen::spec`): each segment cut into tiles
/// of at most `tile_m` positions, as triples `(start, end, segment)`; empty segments have no
/// tile. `None` when a position does not fit in `u32` or `tile_m` is 0.
pub(crate) fn tiles(offsets: &[usize], tile_m: usize) -> Option<Vec<u32>> {
    if tile_m == 0 {
        return None;
    }
    let mut out = Vec::new();
    for (s, w) in offsets.windows(2).enumerate() {
        let mut lo = w[0];
        while lo < w[1] {
            let hi = lo.saturating_add(tile_m).min(w[1]);
            out.extend([u32::try_from(lo).ok()?, u32::try_from(hi).ok()?, u32::try_from(s).ok()?]);
            lo = hi;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pigeon_ir::plan::{BufferId, StoreMode};
    use pigeon_ir::shape::LinearForm;
    use pigeon_ir::{Endpoint, EntityId};

    #[test]
    fn tiles_cut_segments_and_skip_empty_ones() {
        // Segments: [0,5) of 5 rows, [5,5) empty, [5,6) one row, [6,6) empty at the end.
        let offsets = [0, 5, 5, 6, 6];
        assert_eq!(tiles(&offsets, 2), Some(vec![0, 2, 0, 2, 4, 0, 4, 5, 0, 5, 6, 2]));
        assert_eq!(tiles(&offsets, 8), Some(vec![0, 5, 0, 5, 6, 2]));
        assert_eq!(tiles(&[0, 0], 4), Some(vec![]));
        assert_eq!(tiles(&offsets, 0), None);
    }

    #[test]
    fn rows_are_counting_sorted_stably() {
        // Slices of rows 0..6: 2 0 2 1 0 2 over 4 slices (slice 3 empty).
        let sl = [2usize, 0, 2, 1, 0, 2];
        let got = group_rows(6, 4, |i| sl[i]);
        assert_eq!(got, Some((vec![1, 4, 3, 0, 2, 5], vec![0, 2, 3, 6, 6])));
        assert_eq!(group_rows(2, 2, |i| i * 2), None);
        assert_eq!(group_rows(0, 2, |_| 0), Some((vec![], vec![0, 0, 0])));
    }

    fn gemm(rows: RowSpace, segment: Select) -> Gemm {
        Gemm {
            rows,
            segment,
            a: BufferId::new(0),
            gather: pigeon_ir::plan::RowIndex::This,
            b: BufferId::new(1),
            form: LinearForm::Plain { k: 1, n: 1 },
            epilogue: vec![],
            c: BufferId::new(2),
            store: StoreMode::Write,
        }
    }

    #[test]
    fn classification_follows_the_row_and_slice_spaces() {
        use RowSpace as R;
        let c = |rows, sel, b| classify(&gemm(rows, sel), b);
        assert_eq!(c(R::Edges, Select::Relation, R::One), Segmentation::Single);
        assert_eq!(c(R::Nodes, Select::Same, R::Nodes), Segmentation::PerRow);
        assert_eq!(c(R::Relations, Select::Relation, R::Relations), Segmentation::PerRow);
        assert_eq!(c(R::Edges, Select::Relation, R::Relations), Segmentation::EdgesByRelation);
        let cd = R::Compact(Endpoint::Dst);
        assert_eq!(
            c(cd, Select::Relation, R::Relations),
            Segmentation::CompactByRelation(Endpoint::Dst)
        );
        assert_eq!(c(R::Nodes, Select::NodeType, R::NodeTypes), Segmentation::NodesByType);
        assert_eq!(
            c(R::Edges, Select::SrcType, R::NodeTypes),
            Segmentation::Sorted(Select::SrcType)
        );
    }

    #[test]
    fn segments_with_and_without_order() {
        let g = HeteroGraph {
            type_offsets: vec![0, 2, 3],
            node_types: vec!["a".into(), "b".into()],
            relations: vec![
                crate::graph::Relation { name: "r0".into(), src_type: None, dst_type: None },
                crate::graph::Relation { name: "r1".into(), src_type: None, dst_type: None },
            ],
            // e0: 2 -> 0 r1, e1: 0 -> 1 r0, e2: 1 -> 0 r1
            src: vec![2, 0, 1],
            dst: vec![0, 1, 0],
            rel: vec![1, 0, 1],
            ..HeteroGraph::default()
        };
        let l = match Layouts::build(&g, &[pigeon_ir::plan::Layout::EdgesByRelation]) {
            Ok(l) => l,
            Err(e) => panic!("{e}"),
        };
        let run = |kind, rows, slices, f: &dyn Fn(usize) -> usize| {
            segments(kind, &g, &l, rows, slices, f)
                .map(|s| (s.order.map(|o| o.to_vec()), s.offsets.to_vec()))
        };
        // Relation 0 holds e1; relation 1 holds e0 and e2 (same destination, by edge id).
        let by_rel = run(Segmentation::EdgesByRelation, 3, 2, &|_| 0);
        assert_eq!(by_rel.ok(), Some((Some(vec![1, 0, 2]), vec![0, 1, 3])));
        let by_type = run(Segmentation::NodesByType, 3, 2, &|_| 0);
        assert_eq!(by_type.ok(), Some((None, vec![0, 2, 3])));
        let single = run(Segmentation::Single, 3, 1, &|_| 0);
        assert_eq!(single.ok(), Some((None, vec![0, 3])));
        // Sorted by the source's type: e0 (node 2, type 1), e1 and e2 (types 0).
        let sorted = run(Segmentation::Sorted(Select::SrcType), 3, 2, &|e| [1, 0, 0][e]);
        assert_eq!(sorted.ok(), Some((Some(vec![1, 2, 0]), vec![0, 2, 3])));
        // A segmentation that does not fit is an internal error, not a panic.
        let bad = run(Segmentation::NodesByType, 4, 2, &|_| 0);
        assert!(matches!(bad, Err(RuntimeError::Internal(_))));
        let out_of_range = run(Segmentation::Sorted(Select::SrcType), 3, 1, &|_| 1);
        assert!(matches!(out_of_range, Err(RuntimeError::Internal(_))));
    }
}
