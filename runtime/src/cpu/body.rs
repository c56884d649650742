//! Evaluation of a compiled traversal body over one group of rows (a chunk of rows, or one
//! destination node's incoming edges), statement by statement: an edge-level statement runs
//! for every row of the group, reading that row's registers and the group's node registers;
//! softmax and aggregation reduce across the group; node-level statements run once.

use super::float::{unary, unary_grad, Float};
use super::index::RowMap;
use super::Raw;
use pigeon_ir::plan::Level;
use pigeon_ir::shape::LinearForm;
use pigeon_ir::{AggGroup, AggOp, BinaryOp, Shape, UnaryOp};

/// A register: its level and place in the group's scratch.
pub(super) struct Reg {
    pub id: usize,
    pub level: Level,
    pub off: usize,
    pub width: usize,
    pub shape: Shape,
    pub is_store: bool,
}

/// How a store writes.
#[derive(Copy, Clone, Debug)]
pub(super) enum StoreKind<'a> {
    /// Overwrite the current row (edge level).
    Write,
    /// Overwrite the group's node row (node level).
    WriteNode,
    /// Add into the group's node row (the task owns it).
    AddNode,
    /// Atomically add into row `at[edge]` of the buffer: the edge's destination, source or
    /// compact row.
    AddAtomic(&'a [u32]),
}

/// A compiled statement (register operands by index).
pub(super) enum SOp<'a, T> {
    Load {
        view: Raw<T>,
        map: RowMap<'a>,
    },
    Const(T),
    Unary(UnaryOp, usize),
    Binary {
        op: BinaryOp,
        a: usize,
        b: usize,
        ia: Vec<usize>,
        ib: Vec<usize>,
    },
    Dot {
        a: usize,
        b: usize,
        k: usize,
        ia: Vec<usize>,
        ib: Vec<usize>,
    },
    Copy(usize),
    Concat {
        xs: Vec<(usize, usize)>,
        lead: usize,
    },
    MatVec {
        x: usize,
        w: Raw<T>,
        map: RowMap<'a>,
        form: LinearForm,
    },
    Softmax(usize),
    Aggregate {
        op: AggOp,
        group: AggGroup,
        x: usize,
    },
    Store {
        view: Raw<T>,
        x: usize,
        kind: StoreKind<'a>,
    },
    UnaryGrad {
        op: UnaryOp,
        x: usize,
        dy: usize,
    },
    /// `out[to[j]] += x[j]` for every element `j` of the operand.
    SumTo {
        x: usize,
        to: Vec<usize>,
    },
    /// `out[j] = x[from[j]]`: transposes and narrows are gathers of the row's elements.
    Permute {
        x: usize,
        from: Vec<usize>,
    },
    GroupSize(AggGroup),
    MaxGrad {
        group: AggGroup,
        x: usize,
        dy: usize,
    },
}

/// A compiled body.
pub(super) struct Body<'a, T> {
    pub regs: Vec<Reg>,
    pub ops: Vec<SOp<'a, T>>,
    pub edge_width: usize,
    pub node_width: usize,
    pub rel: &'a [u32],
}

/// Which rows a group holds.
#[derive(Copy, Clone)]
pub(super) enum Ids<'a> {
    /// Rows `lo..lo + n`.
    Range(usize),
    /// These edge ids.
    Slice(&'a [u32]),
}

impl Ids<'_> {
    #[inline]
    fn get(&self, j: usize) -> usize {
        match self {
            Ids::Range(lo) => lo + j,
            Ids::Slice(s) => s[j] as usize,
        }
    }
}

/// Per-task scratch, reused across groups.
#[derive(Default)]
pub(super) struct Group<T> {
    edge: Vec<T>,
    node: Vec<T>,
    perm: Vec<(u32, u32)>,
}

impl<'a, T: Float> Body<'a, T> {
    /// Evaluates the body over `n` rows `ids` (and node `node` in node-parallel traversals).
    pub fn run(&self, g: &mut Group<T>, ids: Ids, n: usize, node: Option<usize>) {
        let w = self.edge_width;
        g.edge.resize(n * w, T::ZERO);
        g.node.resize(self.node_width, T::ZERO);
        for (reg, op) in self.regs.iter().zip(&self.ops) {
            match (op, reg.level) {
                (SOp::Softmax(x), _) => self.softmax(g, n, &self.regs[*x], reg),
                (SOp::GroupSize(group), _) => self.group_size(g, ids, n, *group, reg),
                (SOp::MaxGrad { group, x, dy }, _) => {
                    let (x, dy) = (&self.regs[*x], &self.regs[*dy]);
                    self.max_grad(g, ids, n, *group, (x, dy), reg)
                }
                (SOp::Aggregate { op, group, x }, _) => {
                    self.aggregate(g, ids, n, *op, *group, &self.regs[*x], reg)
                }
                (_, Level::Edge) => {
                    for j in 0..n {
                        let (lo, hi) = g.edge[j * w..(j + 1) * w].split_at_mut(reg.off);
                        let node_regs = &g.node;
                        let get = |r: usize| {
                            let x = &self.regs[r];
                            let src = if x.level == Level::Edge { &*lo } else { &node_regs[..] };
                            &src[x.off..x.off + x.width]
                        };
                        self.eval(op, &mut hi[..reg.width], &get, ids.get(j), node);
                    }
                }
                (_, Level::Node) => {
                    let (lo, hi) = g.node.split_at_mut(reg.off);
                    let get = |r: usize| {
                        let x = &self.regs[r];
                        &lo[x.off..x.off + x.width]
                    };
                    let i = node.unwrap_or(0);
                    self.eval(op, &mut hi[..reg.width], &get, i, node);
                }
            }
        }
    }

    /// Evaluates a row-local statement into `out`; `row` is the statement's row (edge, row or
    /// node id), `node` the group's node.
    fn eval<'r>(
        &self,
        op: &SOp<T>,
        out: &mut [T],
        get: &dyn Fn(usize) -> &'r [T],
        row: usize,
        node: Option<usize>,
    ) where
        T: 'r,
    {
        match op {
            // SAFETY (loads, matvec): these buffers are not written by this kernel, or only
            // through this very row (access rules).
            SOp::Load { view, map } => out.copy_from_slice(unsafe { view.row(map.get(row)) }),
            SOp::Const(c) => out[0] = *c,
            SOp::Unary(f, x) => {
                for (o, &v) in out.iter_mut().zip(get(*x)) {
                    *o = unary(*f, v);
                }
            }
            SOp::Binary { op, a, b, ia, ib } => binary(*op, get(*a), get(*b), ia, ib, out),
            SOp::Dot { a, b, k, ia, ib } => {
                let (xa, xb) = (get(*a), get(*b));
                for ((o, &pa), &pb) in out.iter_mut().zip(ia).zip(ib) {
                    let (ra, rb) = (&xa[pa * k..(pa + 1) * k], &xb[pb * k..(pb + 1) * k]);
                    *o = ra.iter().zip(rb).fold(T::ZERO, |s, (&p, &q)| s + p * q);
                }
            }
            SOp::Copy(x) => out.copy_from_slice(get(*x)),
            SOp::UnaryGrad { op, x, dy } => {
                for ((o, &v), &d) in out.iter_mut().zip(get(*x)).zip(get(*dy)) {
                    *o = unary_grad(*op, v, d);
                }
            }
            SOp::SumTo { x, to } => {
                out.iter_mut().for_each(|o| *o = T::ZERO);
                for (&v, &t) in get(*x).iter().zip(to) {
                    out[t] += v;
                }
            }
            SOp::Permute { x, from } => {
                let x = get(*x);
                for (o, &f) in out.iter_mut().zip(from) {
                    *o = x[f];
                }
            }
            SOp::Concat { xs, lead } => {
                let mut at = 0;
                for l in 0..*lead {
                    for &(x, width) in xs {
                        out[at..at + width].copy_from_slice(&get(x)[l * width..(l + 1) * width]);
                        at += width;
                    }
                }
            }
            SOp::MatVec { x, w, map, form } => {
                matvec(form, get(*x), unsafe { w.row(map.get(row)) }, out)
            }
            SOp::Store { view, x, kind } => {
                let v = get(*x);
                let i = node.unwrap_or(0);
                // SAFETY: edge rows belong to one group; node rows to their node's task; the
                // atomic destination rows are only touched by atomic adds (access rules).
                unsafe {
                    match kind {
                        StoreKind::Write => view.row_mut(row).copy_from_slice(v),
                        StoreKind::WriteNode => view.row_mut(i).copy_from_slice(v),
                        StoreKind::AddNode => {
                            view.row_mut(i).iter_mut().zip(v).for_each(|(o, &x)| *o += x)
                        }
                        StoreKind::AddAtomic(at) => view.add_atomic(at[row] as usize, v),
                    }
                }
            }
            SOp::Softmax(_) | SOp::Aggregate { .. } | SOp::GroupSize(_) | SOp::MaxGrad { .. } => {}
        }
    }

    /// Softmax of edge register `x` over the group's rows into `out`, per element, shifted by
    /// the maximum.
    fn softmax(&self, g: &mut Group<T>, n: usize, x: &Reg, out: &Reg) {
        let w = self.edge_width;
        let e = &mut g.edge;
        for k in 0..x.width {
            let max = (0..n).fold(T::NEG_INFINITY, |m, j| m.max(e[j * w + x.off + k]));
            let mut total = T::ZERO;
            for j in 0..n {
                let v = (e[j * w + x.off + k] - max).exp();
                e[j * w + out.off + k] = v;
                total += v;
            }
            for j in 0..n {
                let v = e[j * w + out.off + k];
                e[j * w + out.off + k] = v / total;
            }
        }
    }

    /// The group's rows as runs of one aggregation group each: all rows, or the rows of each
    /// relation (in `g.perm`, sorted by relation and then position).
    fn runs(&self, g: &mut Group<T>, ids: Ids, n: usize, group: AggGroup) {
        g.perm.clear();
        match group {
            AggGroup::All => g.perm.extend((0..n).map(|j| (0, j as u32))),
            AggGroup::PerRelation => {
                g.perm.extend((0..n).map(|j| (self.rel[ids.get(j)], j as u32)));
                g.perm.sort_unstable();
            }
        }
    }

    /// The size of each row's aggregation group into scalar edge register `out`.
    fn group_size(&self, g: &mut Group<T>, ids: Ids, n: usize, group: AggGroup, out: &Reg) {
        self.runs(g, ids, n, group);
        let w = self.edge_width;
        for run in g.perm.chunk_by(|a, b| a.0 == b.0) {
            let size = T::from_f64(run.len() as f64);
            for &(_, j) in run {
                g.edge[j as usize * w + out.off] = size;
            }
        }
    }

    /// Per element, `dy` on the group's first row attaining the maximum of `x`, 0 elsewhere.
    fn max_grad(
        &self,
        g: &mut Group<T>,
        ids: Ids,
        n: usize,
        group: AggGroup,
        (x, dy): (&Reg, &Reg),
        out: &Reg,
    ) {
        self.runs(g, ids, n, group);
        let w = self.edge_width;
        let (perm, e) = (&g.perm, &mut g.edge);
        for j in 0..n {
            e[j * w + out.off..j * w + out.off + out.width].iter_mut().for_each(|v| *v = T::ZERO);
        }
        for run in perm.chunk_by(|a, b| a.0 == b.0) {
            for k in 0..x.width {
                let at = |j: u32| e[j as usize * w + x.off + k];
                let first =
                    run.iter().map(|&(_, j)| j).fold(None, |best: Option<u32>, j| match best {
                        Some(b) if at(b) >= at(j) => Some(b),
                        _ => Some(j),
                    });
                if let Some(j) = first {
                    let j = j as usize;
                    e[j * w + out.off + k] = e[j * w + dy.off + k];
                }
            }
        }
    }

    /// Reduces edge register `x` over the group's rows into node register `out`.
    #[allow(clippy::too_many_arguments)]
    fn aggregate(
        &self,
        g: &mut Group<T>,
        ids: Ids,
        n: usize,
        op: AggOp,
        group: AggGroup,
        x: &Reg,
        out: &Reg,
    ) {
        let w = self.edge_width;
        let (edge, node) = (&g.edge, &mut g.node);
        let acc = &mut node[out.off..out.off + out.width];
        acc.iter_mut().for_each(|a| *a = T::ZERO);
        let row = |j: usize| &edge[j * w + x.off..j * w + x.off + x.width];
        match group {
            AggGroup::All => reduce(op, (0..n).map(row), n, acc, false),
            AggGroup::PerRelation => {
                g.perm.clear();
                g.perm.extend((0..n).map(|j| (self.rel[ids.get(j)], j as u32)));
                g.perm.sort_unstable();
                for run in g.perm.chunk_by(|a, b| a.0 == b.0) {
                    reduce(op, run.iter().map(|&(_, j)| row(j as usize)), run.len(), acc, true);
                }
            }
        }
    }
}

/// Reduces `n > 0` rows into `acc` (overwriting, or adding when `add`); nothing for no rows.
fn reduce<'r, T: Float + 'r>(
    op: AggOp,
    rows: impl Iterator<Item = &'r [T]> + Clone,
    n: usize,
    acc: &mut [T],
    add: bool,
) {
    if n == 0 {
        return;
    }
    let width = acc.len();
    let mut tmp = [T::ZERO; 64];
    let mut own = Vec::new();
    let r: &mut [T] = if width <= 64 {
        &mut tmp[..width]
    } else {
        own.resize(width, T::ZERO);
        &mut own
    };
    match op {
        AggOp::Sum | AggOp::Mean => {
            r.iter_mut().for_each(|v| *v = T::ZERO);
            for x in rows {
                r.iter_mut().zip(x).for_each(|(v, &y)| *v += y);
            }
            if op == AggOp::Mean {
                let c = T::from_f64(n as f64);
                r.iter_mut().for_each(|v| *v = *v / c);
            }
        }
        AggOp::Max => {
            r.iter_mut().for_each(|v| *v = T::NEG_INFINITY);
            for x in rows {
                r.iter_mut().zip(x).for_each(|(v, &y)| *v = v.max(y));
            }
        }
    }
    for (a, &v) in acc.iter_mut().zip(r.iter()) {
        *a = if add { *a + v } else { v };
    }
}

/// `out = op(a, b)` with broadcast offsets. The operator is matched once per row, not per
/// element, and the common shapes (equal, or one side a scalar) take contiguous loops the
/// compiler vectorises.
fn binary<T: Float>(op: BinaryOp, a: &[T], b: &[T], ia: &[usize], ib: &[usize], out: &mut [T]) {
    match op {
        BinaryOp::Add => binary_with(|x, y| x + y, a, b, ia, ib, out),
        BinaryOp::Sub => binary_with(|x, y| x - y, a, b, ia, ib, out),
        BinaryOp::Mul => binary_with(|x, y| x * y, a, b, ia, ib, out),
        BinaryOp::Div => binary_with(|x, y| x / y, a, b, ia, ib, out),
        BinaryOp::Max => binary_with(|x: T, y| x.max(y), a, b, ia, ib, out),
    }
}

#[inline(always)]
fn binary_with<T: Float>(
    f: impl Fn(T, T) -> T,
    a: &[T],
    b: &[T],
    ia: &[usize],
    ib: &[usize],
    out: &mut [T],
) {
    let n = out.len();
    if a.len() == n && b.len() == n {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = f(x, y);
        }
    } else if a.len() == 1 && b.len() == n {
        let x = a[0];
        for (o, &y) in out.iter_mut().zip(b) {
            *o = f(x, y);
        }
    } else if b.len() == 1 && a.len() == n {
        let y = b[0];
        for (o, &x) in out.iter_mut().zip(a) {
            *o = f(x, y);
        }
    } else {
        for ((o, &pa), &pb) in out.iter_mut().zip(ia).zip(ib) {
            *o = f(a[pa], b[pb]);
        }
    }
}

/// `out = x @ w` for one row in the given form.
fn matvec<T: Float>(form: &LinearForm, x: &[T], w: &[T], out: &mut [T]) {
    let mv = |x: &[T], w: &[T], k: usize, n: usize, out: &mut [T]| {
        out.iter_mut().for_each(|o| *o = T::ZERO);
        for kk in 0..k {
            let xv = x[kk];
            for (o, &wv) in out.iter_mut().zip(&w[kk * n..(kk + 1) * n]) {
                *o += xv * wv;
            }
        }
    };
    match *form {
        LinearForm::Plain { k, n } => mv(x, w, k, n, out),
        LinearForm::Batched { batch, k, n } => {
            for b in 0..batch {
                mv(
                    &x[b * k..(b + 1) * k],
                    &w[b * k * n..(b + 1) * k * n],
                    k,
                    n,
                    &mut out[b * n..(b + 1) * n],
                );
            }
        }
        LinearForm::Broadcast { batch, k, n } => {
            for b in 0..batch {
                mv(&x[b * k..(b + 1) * k], w, k, n, &mut out[b * n..(b + 1) * n]);
            }
        }
    }
}
