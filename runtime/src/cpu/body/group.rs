//! The group statements of a traversal body (`body.rs`): softmax, aggregation (a fused sum of
//! a binary statement included), group sizes and the maximum's derivative, each over the rows
//! of every node of the group.

use super::{At, Body, Group, Layout, Reg, SOp, Span};
use crate::cpu::float::Float;
use crate::cpu::rowops::{binary_sum_rows, reduce};
use pigeon_ir::{AggGroup, AggOp};

impl<T: Float> Body<'_, T> {
    /// Softmax of edge register `x` over each node's rows into `out`, per element, shifted by
    /// the maximum.
    pub(super) fn softmax(&self, g: &mut Group<T>, span: Span, lay: Layout, x: &Reg, out: &Reg) {
        let (xb, ob, w) = (lay.base(x), lay.base(out), x.width);
        let (lo, hi) = g.regs.split_at_mut(ob);
        let tmp = &mut g.tmp;
        for i in 0..span.nodes() {
            let rows = span.of_node(i);
            if rows.is_empty() {
                continue;
            }
            tmp.clear();
            tmp.resize(2 * w, T::ZERO);
            let (max, total) = tmp.split_at_mut(w);
            max.iter_mut().for_each(|v| *v = T::NEG_INFINITY);
            for j in rows.clone() {
                for (mx, &v) in max.iter_mut().zip(&lo[xb + j * w..xb + (j + 1) * w]) {
                    *mx = mx.max(v);
                }
            }
            for j in rows.clone() {
                let xs = &lo[xb + j * w..xb + (j + 1) * w];
                let os = &mut hi[(j * w)..(j + 1) * w];
                for (((o, &v), &mx), t) in os.iter_mut().zip(xs).zip(&*max).zip(total.iter_mut()) {
                    *o = (v - mx).exp();
                    *t += *o;
                }
            }
            for j in rows {
                for (o, &t) in hi[j * w..(j + 1) * w].iter_mut().zip(&*total) {
                    *o = *o / t;
                }
            }
        }
    }

    /// The rows of local node `i` as runs of one aggregation group each: all rows, or the rows
    /// of each relation (in `g.perm`, sorted by relation and then position).
    pub(super) fn runs(&self, perm: &mut Vec<(u32, u32)>, span: Span, i: usize, group: AggGroup) {
        perm.clear();
        let rows = span.of_node(i);
        match group {
            AggGroup::All => perm.extend(rows.map(|j| (0, j as u32))),
            AggGroup::PerRelation => {
                perm.extend(rows.map(|j| (self.rel[span.id(j)], j as u32)));
                perm.sort_unstable();
            }
        }
    }

    /// The size of each row's aggregation group into scalar edge register `out`.
    pub(super) fn group_size(
        &self,
        g: &mut Group<T>,
        span: Span,
        lay: Layout,
        group: AggGroup,
        out: &Reg,
    ) {
        let ob = lay.base(out);
        for i in 0..span.nodes() {
            self.runs(&mut g.perm, span, i, group);
            for run in g.perm.chunk_by(|a, b| a.0 == b.0) {
                let size = T::from_f64(run.len() as f64);
                for &(_, j) in run {
                    g.regs[ob + j as usize] = size;
                }
            }
        }
    }

    /// Per element, `dy` on the first row of each group attaining the maximum of `x`, 0
    /// elsewhere.
    pub(super) fn max_grad(
        &self,
        g: &mut Group<T>,
        span: Span,
        lay: Layout,
        group: AggGroup,
        (x, dy): (&Reg, &Reg),
        out: &Reg,
    ) {
        let (xb, db, ob, w) = (lay.base(x), lay.base(dy), lay.base(out), x.width);
        g.regs[ob..ob + lay.n * w].iter_mut().for_each(|v| *v = T::ZERO);
        for i in 0..span.nodes() {
            self.runs(&mut g.perm, span, i, group);
            let (perm, e) = (&g.perm, &mut g.regs);
            for run in perm.chunk_by(|a, b| a.0 == b.0) {
                for k in 0..w {
                    let at = |j: u32| e[xb + j as usize * w + k];
                    let first =
                        run.iter().map(|&(_, j)| j).fold(None, |best: Option<u32>, j| match best {
                            Some(b) if at(b) >= at(j) => Some(b),
                            _ => Some(j),
                        });
                    if let Some(j) = first {
                        let j = j as usize;
                        e[ob + j * w + k] = e[db + j * w + k];
                    }
                }
            }
        }
    }

    /// Sums (or averages) the binary statement `x` over each node's rows into node register
    /// `out`, computing it row by row into the sum (`with_fusion`): the same additions, in the
    /// same order, as [`Body::aggregate`] of the computed register.
    pub(super) fn aggregate_fused(
        &self,
        g: &mut Group<T>,
        span: Span,
        lay: Layout,
        op: AggOp,
        x: usize,
        out: &Reg,
    ) {
        let SOp::Binary { op: f, a, b, ia, ib } = &self.ops[x] else { return };
        let (ob, w) = (lay.base(out), out.width);
        let first = match span {
            Span::Nodes { first, .. } => first,
            Span::Rows { .. } => 0,
        };
        let mut sums = std::mem::take(&mut g.tmp);
        sums.clear();
        sums.resize(lay.m * w, T::ZERO);
        {
            let (regs, node_of) = (&g.regs[..], &g.node_of[..]);
            let (loads, idx) = (&g.loads[..], &g.idx[..]);
            let at = At { span, lay, edge: true, count: lay.n, first, node_of, regs, loads, idx };
            let (a, b) = (self.opnd(&at, *a), self.opnd(&at, *b));
            let ra = |j| a.row_ahead(j);
            let rb = |j| b.row_ahead(j);
            for (i, acc) in sums.chunks_exact_mut(w.max(1)).enumerate() {
                let rows = span.of_node(i);
                let n = rows.len();
                binary_sum_rows(*f, ra, rb, ia, ib, rows, acc);
                if op == AggOp::Mean && n > 0 {
                    let c = T::from_f64(n as f64);
                    acc.iter_mut().for_each(|v| *v = *v / c);
                }
            }
        }
        g.regs[ob..ob + lay.m * w].copy_from_slice(&sums);
        g.tmp = sums;
    }

    /// Reduces edge register `x` over each node's rows into node register `out`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn aggregate(
        &self,
        g: &mut Group<T>,
        span: Span,
        lay: Layout,
        op: AggOp,
        group: AggGroup,
        x: &Reg,
        out: &Reg,
    ) {
        let (xb, ob, w) = (lay.base(x), lay.base(out), x.width);
        let (node, edge) = g.regs.split_at_mut(lay.edge_base);
        let xb = xb - lay.edge_base;
        let row = |j: usize| &edge[xb + j * w..xb + (j + 1) * w];
        for i in 0..span.nodes() {
            let acc = &mut node[ob + i * w..ob + (i + 1) * w];
            acc.iter_mut().for_each(|a| *a = T::ZERO);
            let rows = span.of_node(i);
            match group {
                AggGroup::All => reduce(op, rows.clone().map(row), rows.len(), acc, false),
                AggGroup::PerRelation => {
                    self.runs(&mut g.perm, span, i, group);
                    for run in g.perm.chunk_by(|a, b| a.0 == b.0) {
                        let rows = run.iter().map(|&(_, j)| row(j as usize));
                        reduce(op, rows, run.len(), acc, true);
                    }
                }
            }
        }
    }
}
