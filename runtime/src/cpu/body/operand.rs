//! Operands of the statements of a traversal body (`body.rs`): how loads find their rows in a
//! group (resolved once per group into row tables) and where a statement reads row `j` of an
//! operand.

use super::{At, Body, Group, Raw, RowMap, SOp, Span};
use crate::cpu::float::Float;
use pigeon_ir::plan::Level;

/// Where a statement finds row `j` of an operand: at `ptr + idx[j] * width`, or `ptr + j *
/// width` without an index. The pointer is the operand's register in the scratch or, for a
/// load read straight from its buffer, the buffer; the index is the group's row table of a
/// gathered load (`Group::idx`), the span's edge ids, or, for a node-level register read at
/// edge level, the local node of each row. Rows are resolved once per group, so the inner
/// loops of statements read an index and a pointer instead of matching row maps per row.
#[derive(Copy, Clone)]
pub(super) struct Opnd<'s, T> {
    pub(super) ptr: *const T,
    pub(super) width: usize,
    /// Rows that may be read (`idx` entries or `j` are checked against it).
    pub(super) rows: usize,
    pub(super) idx: Option<&'s [u32]>,
    /// Whether `row_ahead` prefetches (gathered rows of a buffer larger than a core's cache).
    pub(super) prefetch: bool,
}

/// How the rows of a load are found in its buffer within a group.
#[derive(Copy, Clone, Debug)]
pub(super) enum LoadRows {
    /// Consecutive rows from this one.
    From(usize),
    /// By the load's row table (`Group::idx`).
    Table,
    /// By the edge ids of the span (an edge-level identity load of a grouped traversal).
    SpanEdges,
}

/// Rows ahead of the current one that gathers prefetch: a gathered row costs a cache miss,
/// which the hardware cannot predict from edge ids in CSR order.
pub(super) const PREFETCH_AHEAD: usize = 8;

/// Buffers smaller than this are not prefetched: they stay in a core's cache (a relation's
/// scalar, a small table), where the prefetch is an instruction for nothing.
const PREFETCH_MIN_BYTES: usize = 256 * 1024;

impl<'s, T: Float> Opnd<'s, T> {
    /// Row `j`, after prefetching row `j + PREFETCH_AHEAD` of a gathered buffer operand.
    #[inline(always)]
    pub(super) fn row_ahead(&self, j: usize) -> &'s [T] {
        if self.prefetch {
            if let Some(&r) = self.idx.and_then(|t| t.get(j + PREFETCH_AHEAD)) {
                crate::cpu::prefetch_values(
                    self.ptr,
                    r as usize * self.width,
                    self.width,
                    self.rows * self.width,
                );
            }
        }
        self.row(j)
    }

    #[inline(always)]
    pub(super) fn row(&self, j: usize) -> &'s [T] {
        let r = match self.idx {
            Some(t) => t[j] as usize,
            None => j,
        };
        assert!(r < self.rows, "operand row {r} beyond its {} rows", self.rows);
        // SAFETY: in bounds (`rows` rows of `width` values start at `ptr`, checked where the
        // operand is made); loads read straight from their buffer only when this kernel does
        // not write its storage (`Body::with_direct_loads`), and the storage (or the scratch
        // borrowed for `'s`) outlives the statement.
        unsafe { std::slice::from_raw_parts(self.ptr.add(r * self.width), self.width) }
    }

    /// The value of row `j` of a one-value operand (its first value otherwise).
    #[inline(always)]
    pub(super) fn value(&self, j: usize) -> T {
        self.row(j)[0]
    }

    /// All `count` rows as one slice, when they are consecutive.
    pub(super) fn all(&self, count: usize) -> Option<&'s [T]> {
        if self.idx.is_some() || count > self.rows {
            return None;
        }
        // SAFETY: as in `row`, for rows `0..count`.
        Some(unsafe { std::slice::from_raw_parts(self.ptr, count * self.width) })
    }
}

impl<'a, T: Float> Body<'a, T> {
    /// How each load of the group finds its rows: consecutive rows (an identity map over a
    /// chunk of rows, or over the group's nodes), the span's edge ids (an identity map over a
    /// grouped span's edges), or a row table of the group, filled here once per group with
    /// the map matched once per load.
    pub(super) fn resolve_loads(&self, g: &mut Group<T>, span: Span) {
        let k = self.ops.len();
        g.loads.clear();
        g.loads.resize(k, LoadRows::From(0));
        g.idx.resize_with(k, Vec::new);
        let first = match span {
            Span::Nodes { first, .. } => first,
            Span::Rows { .. } => 0,
        };
        for (i, op) in self.ops.iter().enumerate() {
            let SOp::Load { map, .. } = op else { continue };
            let node = self.regs[i].level == Level::Node;
            g.loads[i] = match (node, span, map) {
                (true, _, RowMap::Identity) => LoadRows::From(first),
                (false, Span::Rows { lo, .. }, RowMap::Identity) => LoadRows::From(lo),
                (false, Span::Nodes { .. }, RowMap::Identity) => LoadRows::SpanEdges,
                (true, _, map) => {
                    fill_rows(&mut g.idx[i], (first..first + span.nodes()).map(|i| i as u32), map);
                    LoadRows::Table
                }
                (false, Span::Rows { lo, n }, map) => {
                    fill_rows(&mut g.idx[i], (lo..lo + n).map(|i| i as u32), map);
                    LoadRows::Table
                }
                (false, Span::Nodes { edges, .. }, map) => {
                    fill_rows(&mut g.idx[i], edges.iter().copied(), map);
                    LoadRows::Table
                }
            };
        }
    }

    /// Where statements at `at` find operand register `r`: the register of a view's operand
    /// (views that are not copied), a load's buffer (direct loads) or the scratch.
    pub(super) fn opnd<'m>(&'m self, at: &At<'m, T>, r: usize) -> Opnd<'m, T> {
        let width = self.regs[r].width;
        let r = self.source[r];
        let x = &self.regs[r];
        match &self.ops[r] {
            // Direct loads are read at their own level (`with_direct_loads`).
            SOp::Load { view, .. } if self.direct[r] => self.load_opnd(at, r, *view, width),
            _ => {
                let (rows, idx) = match (at.edge, x.level) {
                    (true, Level::Node) => (at.lay.m, Some(at.node_of)),
                    (true, Level::Edge) => (at.lay.n, None),
                    (false, _) => (at.lay.m, None),
                };
                let base = at.lay.base(x);
                assert!(base + rows * width <= at.regs.len(), "register r{r} beyond the scratch");
                let ptr = at.regs[base..].as_ptr();
                Opnd { ptr, width, rows, idx, prefetch: false }
            }
        }
    }

    /// Where load `r` of `view` finds its rows in its buffer (`Body::resolve_loads`).
    pub(super) fn load_opnd<'m>(
        &'m self,
        at: &At<'m, T>,
        r: usize,
        view: Raw<T>,
        width: usize,
    ) -> Opnd<'m, T> {
        let all = view.len() / width.max(1);
        let big = view.len() * std::mem::size_of::<T>() >= PREFETCH_MIN_BYTES;
        let (ptr, rows, idx) = match at.loads[r] {
            LoadRows::From(first) => {
                let first = first.min(all);
                (view.ptr().wrapping_add(first * width).cast_const(), all - first, None)
            }
            LoadRows::Table => (view.ptr().cast_const(), all, Some(&at.idx[r][..])),
            LoadRows::SpanEdges => (view.ptr().cast_const(), all, Some(at.span.edges())),
        };
        Opnd { ptr, width, rows, idx, prefetch: big && idx.is_some() }
    }
}

/// Sets `table` to the rows `map` gives the ids `ids`, the map matched once.
pub(super) fn fill_rows(table: &mut Vec<u32>, ids: impl Iterator<Item = u32>, map: &RowMap) {
    table.clear();
    match map {
        RowMap::Identity => table.extend(ids),
        RowMap::Zero => table.extend(ids.map(|_| 0)),
        RowMap::Table(t) => table.extend(ids.map(|i| t[i as usize])),
        RowMap::Owned(t) => table.extend(ids.map(|i| t[i as usize])),
        RowMap::Compose(inner, outer) => {
            table.extend(ids.map(|i| outer[inner[i as usize] as usize]))
        }
    }
}
