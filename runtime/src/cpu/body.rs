//! Evaluation of a compiled traversal body over one group of rows: a chunk of rows of a row
//! traversal, or the incoming edges of a run of consecutive destination nodes. The body runs
//! statement by statement, each statement over all the group's rows at once (the operator is
//! matched once per group, not once per row): an edge-level statement runs for every row,
//! reading that row's registers and its node's registers; softmax and aggregation reduce over
//! each node's edges; node-level statements run once per node.
//!
//! Registers live in one scratch vector per task, register-major: the node registers first
//! (register `r` of node `i` at `r.off * m + i * r.width` for `m` nodes), then the edge
//! registers (register `r` of row `j` at `m * node_width + r.off * n + j * r.width` for `n`
//! rows). An element-wise statement over registers of one width is then one contiguous loop,
//! and every operand of a statement lies below its result, so a statement's result and its
//! operands are disjoint slices of the scratch.
//!
//! Not every register reaches the scratch ([`Body::with_direct_loads`], [`Body::with_fusion`]):
//! loads of buffers the kernel does not write are read in place, views read their operand, and
//! an element-wise statement read only by one store or reduction is computed by it: straight
//! into the store's rows, added into a node's row or register, or (a product summed over its
//! trailing axes) as dot products.
//!
//! A load's rows are resolved once per group (`Body::resolve_loads`): consecutive rows, the
//! span's edge ids, or a row table filled with its row map matched once, so the inner loop of
//! a statement reads an operand's row `j` as `ptr + idx[j] * width` (`Opnd`). Row loops over
//! gathered rows of a buffer larger than a core's cache prefetch a few rows ahead; scalar
//! binary statements run as one loop over values (`binary_values`).

use super::float::Float;
use super::index::RowMap;
use super::rowops::{
    binary, binary_rows, binary_rows_into, binary_values, dot, matvec, sum, unary_all,
    unary_grad_all,
};
use super::Raw;

mod group;
mod operand;
use operand::{LoadRows, Opnd, PREFETCH_AHEAD};
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
    /// Per statement, whether it is a load that statements read straight from its buffer
    /// (set by [`Body::with_direct_loads`]).
    pub direct: Vec<bool>,
    /// Per statement, the statement whose register its operands read: its own, or for a view
    /// that is not copied, its operand's source (set by [`Body::with_fusion`]).
    pub source: Vec<usize>,
    /// Per statement, whether it is element-wise and computed by the store that is its only
    /// reader, straight into the store's buffer (set by [`Body::with_fusion`]).
    pub fused: Vec<bool>,
}

/// What a row-local statement sees of its group: the rows, the register layout, and the
/// registers below its own.
struct At<'g, T> {
    span: Span<'g>,
    lay: Layout,
    /// Whether the statement is at edge level.
    edge: bool,
    /// Rows (edge level) or nodes (node level) of the group.
    count: usize,
    /// The group's first node.
    first: usize,
    node_of: &'g [u32],
    regs: &'g [T],
    /// How each load finds its rows, and the row tables of gathered loads.
    loads: &'g [LoadRows],
    idx: &'g [Vec<u32>],
}

/// The rows of one group.
#[derive(Copy, Clone)]
pub(super) enum Span<'a> {
    /// Rows `lo..lo + n` of a row traversal.
    Rows { lo: usize, n: usize },
    /// The incoming edges `edges` of nodes `first..first + offsets.len() - 1`, whose in-CSR
    /// offsets are `offsets` (node `first + i` holds `edges[offsets[i] - offsets[0]..]` up to
    /// `offsets[i + 1] - offsets[0]`).
    Nodes { first: usize, offsets: &'a [usize], edges: &'a [u32] },
}

impl<'a> Span<'a> {
    /// Number of (edge) rows.
    fn rows(&self) -> usize {
        match self {
            Span::Rows { n, .. } => *n,
            Span::Nodes { edges, .. } => edges.len(),
        }
    }
    /// The edge ids of a grouped span (none for rows).
    fn edges(&self) -> &'a [u32] {
        match self {
            Span::Rows { .. } => &[],
            Span::Nodes { edges, .. } => edges,
        }
    }
    /// Number of nodes.
    fn nodes(&self) -> usize {
        match self {
            Span::Rows { .. } => 0,
            Span::Nodes { offsets, .. } => offsets.len().saturating_sub(1),
        }
    }
    /// The id of row `j`.
    #[inline]
    fn id(&self, j: usize) -> usize {
        match self {
            Span::Rows { lo, .. } => lo + j,
            Span::Nodes { edges, .. } => edges[j] as usize,
        }
    }
    /// Rows of local node `i`.
    fn of_node(&self, i: usize) -> std::ops::Range<usize> {
        match self {
            Span::Rows { n, .. } => 0..*n,
            Span::Nodes { offsets, .. } => offsets[i] - offsets[0]..offsets[i + 1] - offsets[0],
        }
    }
}

/// Per-task scratch, reused across groups.
#[derive(Default)]
pub(super) struct Group<T> {
    regs: Vec<T>,
    /// The local node of each row.
    node_of: Vec<u32>,
    perm: Vec<(u32, u32)>,
    tmp: Vec<T>,
    /// Per statement, how a load finds its rows in its buffer, and its row table when it
    /// gathers them.
    loads: Vec<LoadRows>,
    idx: Vec<Vec<u32>>,
}

/// Where the registers of a group start.
#[derive(Copy, Clone)]
struct Layout {
    /// Rows and nodes.
    n: usize,
    m: usize,
    /// Start of the edge registers.
    edge_base: usize,
}

impl Layout {
    fn base(&self, r: &Reg) -> usize {
        match r.level {
            Level::Edge => self.edge_base + r.off * self.n,
            Level::Node => r.off * self.m,
        }
    }
}

impl<'a, T: Float> Body<'a, T> {
    /// Per statement, whether a group statement (softmax, aggregation, max_grad) reads it: those
    /// read their operands from the scratch.
    fn group_operands(&self) -> Vec<bool> {
        let mut in_scratch = vec![false; self.ops.len()];
        for op in &self.ops {
            match op {
                SOp::Softmax(x) | SOp::Aggregate { x, .. } => in_scratch[*x] = true,
                SOp::MaxGrad { x, dy, .. } => {
                    in_scratch[*x] = true;
                    in_scratch[*dy] = true;
                }
                _ => {}
            }
        }
        in_scratch
    }

    /// Marks the loads that need no copy into the scratch: those of buffers whose storage no
    /// store of this body writes (the others must be read before the body's stores, in
    /// statement order).
    pub fn with_direct_loads(mut self) -> Self {
        let written: Vec<*mut T> = self
            .ops
            .iter()
            .filter_map(|op| match op {
                SOp::Store { view, .. } => Some(view.ptr()),
                _ => None,
            })
            .collect();
        let mut in_scratch = self.group_operands();
        // A node-level register read at edge level is read per row through the row's local
        // node (`Body::opnd`), so a node-level load read there (or through views) is copied.
        for (op, reg) in self.ops.iter().zip(&self.regs) {
            if reg.level == Level::Edge {
                for_each_operand(op, |mut r| loop {
                    if self.regs[r].level == Level::Node {
                        in_scratch[r] = true;
                    }
                    match self.ops[r] {
                        SOp::Copy(x) => r = x,
                        _ => break,
                    }
                });
            }
        }
        self.direct = (self.ops.iter().zip(&in_scratch))
            .map(|(op, &scratch)| {
                !scratch && matches!(op, SOp::Load { view, .. } if !written.contains(&view.ptr()))
            })
            .collect();
        self
    }

    /// Marks the views read through their operand's source (no copy) and the element-wise
    /// statements computed by their store: those whose register only that store reads, when
    /// the store writes consecutive rows (`Write` of a row traversal, `WriteNode`), or writes
    /// or adds a binary statement into its rows one by one (`Write`, `AddNode`). `rows`: whether the body runs over chunks
    /// of rows (`Span::Rows`). Statements that group statements read stay in the scratch.
    pub fn with_fusion(mut self, rows: bool) -> Self {
        let n = self.ops.len();
        let in_scratch = self.group_operands();
        let mut uses = vec![0usize; n];
        for op in &self.ops {
            for_each_operand(op, |r| uses[r] += 1);
        }
        self.source = (0..n).collect();
        for (i, op) in self.ops.iter().enumerate() {
            if let SOp::Copy(x) = *op {
                if !in_scratch[i] && self.regs[i].width == self.regs[x].width {
                    self.source[i] = self.source[x];
                }
            }
        }
        self.fused = vec![false; n];
        for op in &self.ops {
            let SOp::Store { x, kind, .. } = op else { continue };
            let x = *x;
            let fits = match (kind, &self.ops[x]) {
                (_, _) if uses[x] != 1 || in_scratch[x] || self.source[x] != x => false,
                (StoreKind::Write, SOp::Unary(..) | SOp::UnaryGrad { .. }) => rows,
                (StoreKind::Write, SOp::Binary { .. }) => true,
                (
                    StoreKind::WriteNode,
                    SOp::Unary(..) | SOp::UnaryGrad { .. } | SOp::Binary { .. },
                ) => true,
                (StoreKind::AddNode, SOp::Binary { .. }) => true,
                _ => false,
            };
            self.fused[x] = fits;
        }
        // Reductions of a binary statement only they read: sum_to of a product without
        // broadcasting over trailing axes (dot products), a sum or mean over all of a node's
        // rows (added row by row into the node's register).
        for (i, op) in self.ops.iter().enumerate() {
            let x = match op {
                SOp::SumTo { x, to } => {
                    let (xw, w) = (self.regs[*x].width, self.regs[i].width);
                    let block = xw / w.max(1);
                    let blocks = block > 0 && to.iter().enumerate().all(|(i, &t)| t == i / block);
                    let plain = |r: usize| self.regs[r].width == xw;
                    match &self.ops[*x] {
                        SOp::Binary { op: BinaryOp::Mul, a, b, .. }
                            if blocks && plain(*a) && plain(*b) && !in_scratch[*x] =>
                        {
                            *x
                        }
                        _ => continue,
                    }
                }
                SOp::Aggregate { op: AggOp::Sum | AggOp::Mean, group: AggGroup::All, x }
                    if matches!(self.ops[*x], SOp::Binary { .. }) =>
                {
                    *x
                }
                _ => continue,
            };
            if uses[x] == 1 && self.source[x] == x {
                self.fused[x] = true;
            }
        }
        self
    }

    /// Evaluates the body over the rows of `span`.
    pub fn run(&self, g: &mut Group<T>, span: Span) {
        let (n, m) = (span.rows(), span.nodes());
        let lay = Layout { n, m, edge_base: m * self.node_width };
        g.regs.resize(lay.edge_base + n * self.edge_width, T::ZERO);
        g.node_of.clear();
        for i in 0..m {
            let rows = span.of_node(i);
            g.node_of.extend(rows.map(|_| i as u32));
        }
        self.resolve_loads(g, span);
        for ((reg, op), &direct) in self.regs.iter().zip(&self.ops).zip(&self.direct) {
            match op {
                SOp::Load { .. } if direct => {}
                _ if self.fused[reg.id] || self.source[reg.id] != reg.id => {}
                SOp::Softmax(x) => self.softmax(g, span, lay, &self.regs[*x], reg),
                SOp::GroupSize(group) => self.group_size(g, span, lay, *group, reg),
                SOp::MaxGrad { group, x, dy } => {
                    let (x, dy) = (&self.regs[*x], &self.regs[*dy]);
                    self.max_grad(g, span, lay, *group, (x, dy), reg)
                }
                SOp::Aggregate { op, x, .. } if self.fused[*x] => {
                    self.aggregate_fused(g, span, lay, *op, *x, reg)
                }
                SOp::Aggregate { op, group, x } => {
                    self.aggregate(g, span, lay, *op, *group, &self.regs[*x], reg)
                }
                _ => self.eval(g, span, lay, op, reg),
            }
        }
    }

    /// Evaluates a row-local statement for every row (edge level) or node (node level) of the
    /// group into its register `out` (a store: into its buffer).
    fn eval(&self, g: &mut Group<T>, span: Span, lay: Layout, op: &SOp<T>, out: &Reg) {
        let edge = out.level == Level::Edge;
        let count = if edge { lay.n } else { lay.m };
        let first = match span {
            Span::Nodes { first, .. } => first,
            Span::Rows { .. } => 0,
        };
        let base = lay.base(out);
        let (lo, hi) = g.regs.split_at_mut(base);
        let at = At {
            span,
            lay,
            edge,
            count,
            first,
            node_of: &g.node_of,
            regs: &*lo,
            loads: &g.loads,
            idx: &g.idx,
        };
        match op {
            SOp::Store { view, x, kind } => self.store(&at, *view, *x, *kind),
            _ => self.compute(&at, out.id, out.width, &mut hi[..count * out.width]),
        }
    }

    /// Stores register `x` (or, where it is fused into the store, computes it straight into the
    /// buffer) for every row of the group.
    fn store(&self, at: &At<T>, view: Raw<T>, x: usize, kind: StoreKind) {
        let (span, count, first, edge) = (at.span, at.count, at.first, at.edge);
        let node_of = at.node_of;
        // The node the row belongs to: itself at node level, its local node's id at edge
        // level (the destination of an edge of a grouped traversal).
        let node = |j: usize| {
            if edge {
                first + node_of.get(j).copied().unwrap_or(0) as usize
            } else {
                first + j
            }
        };
        let id = |j: usize| if edge { span.id(j) } else { first + j };
        let w = self.regs[x].width;
        if self.fused[x] {
            // SAFETY (all fused stores): as for the unfused stores below; the fused
            // statement's operands are registers or buffers this kernel does not write.
            match (kind, span) {
                (StoreKind::Write, Span::Rows { lo, .. }) => {
                    let dest = unsafe { view.rows_mut(lo, count) };
                    return self.compute(at, x, w, dest);
                }
                (StoreKind::WriteNode, _) => {
                    let dest = unsafe { view.rows_mut(first, count) };
                    return self.compute(at, x, w, dest);
                }
                (StoreKind::AddNode | StoreKind::Write, _) => {
                    if let SOp::Binary { op, a, b, ia, ib } = &self.ops[x] {
                        let (a, b) = (self.opnd(at, *a), self.opnd(at, *b));
                        let (ra, rb) = (|j| a.row_ahead(j), |j| b.row_ahead(j));
                        let add = matches!(kind, StoreKind::AddNode);
                        let row = |j| if add { node(j) } else { id(j) };
                        let dest = |j| {
                            if let (false, Some(&e)) = (add, span.edges().get(j + PREFETCH_AHEAD)) {
                                view.prefetch_row(e as usize);
                            }
                            unsafe { view.row_mut(row(j)) }
                        };
                        return binary_rows_into(*op, add, ra, rb, ia, ib, dest, count);
                    }
                }
                _ => {}
            }
        }
        // A fused statement the cases above do not cover (`with_fusion` fuses none): computed
        // here, then stored.
        let mut computed = Vec::new();
        let x = if self.fused[x] {
            computed.resize(count * w, T::ZERO);
            self.compute(at, x, w, &mut computed);
            Opnd { ptr: computed.as_ptr(), width: w, rows: count, idx: None, prefetch: false }
        } else {
            self.opnd(at, x)
        };
        for j in 0..count {
            let v = x.row_ahead(j);
            if let (StoreKind::Write, Some(&e)) = (kind, span.edges().get(j + PREFETCH_AHEAD)) {
                view.prefetch_row(e as usize);
            }
            // SAFETY: edge rows belong to one group; node rows to their node's task; the
            // atomic destination rows are only touched by atomic adds (access rules).
            unsafe {
                match kind {
                    StoreKind::Write => view.row_mut(id(j)).copy_from_slice(v),
                    StoreKind::WriteNode => view.row_mut(node(j)).copy_from_slice(v),
                    StoreKind::AddNode => {
                        view.row_mut(node(j)).iter_mut().zip(v).for_each(|(o, &x)| *o += x)
                    }
                    StoreKind::AddAtomic(at) => view.add_atomic(at[id(j)] as usize, v),
                }
            }
        }
    }

    /// Computes a row-local statement (not a store) for every row of the group into `res`
    /// (`w` values per row).
    fn compute(&self, at: &At<T>, i: usize, w: usize, res: &mut [T]) {
        let (span, count, first, edge) = (at.span, at.count, at.first, at.edge);
        // The statement's row id: an edge or row id, or a node id.
        let id = |j: usize| if edge { span.id(j) } else { first + j };
        let opnd = |r: usize| self.opnd(at, r);
        match &self.ops[i] {
            // Loads into the scratch read their buffer (written by this kernel only through
            // this very row, access rules) before the statements after them.
            SOp::Load { view, .. } => {
                let x = self.load_opnd(at, i, *view, w);
                match x.all(count) {
                    Some(xs) => res.copy_from_slice(xs),
                    None => {
                        for (j, o) in res.chunks_exact_mut(w.max(1)).enumerate().take(count) {
                            o.copy_from_slice(x.row(j));
                        }
                    }
                }
            }
            SOp::Const(c) => res.iter_mut().for_each(|o| *o = *c),
            SOp::Unary(f, x) => {
                let x = opnd(*x);
                match x.all(count) {
                    Some(xs) => unary_all(*f, xs, res),
                    None => {
                        for (j, o) in res.chunks_exact_mut(w.max(1)).enumerate() {
                            unary_all(*f, x.row(j), o);
                        }
                    }
                }
            }
            SOp::UnaryGrad { op, x, dy } => {
                let (x, dy) = (opnd(*x), opnd(*dy));
                match (x.all(count), dy.all(count)) {
                    (Some(xs), Some(ds)) => unary_grad_all(*op, xs, ds, res),
                    _ => {
                        for (j, o) in res.chunks_exact_mut(w.max(1)).enumerate() {
                            unary_grad_all(*op, x.row(j), dy.row(j), o);
                        }
                    }
                }
            }
            SOp::Binary { op, a, b, ia, ib } => {
                let (a, b) = (opnd(*a), opnd(*b));
                let same = a.width == w && b.width == w;
                match (a.all(count), b.all(count)) {
                    (Some(xa), Some(xb)) if same => binary(*op, xa, xb, &[], &[], res),
                    // Scalars of gathered rows: one value each, without row slices.
                    _ if w == 1 && same => binary_values(*op, |j| a.value(j), |j| b.value(j), res),
                    _ => {
                        let ra = |j| a.row_ahead(j);
                        let rb = |j| b.row_ahead(j);
                        binary_rows(*op, ra, rb, ia, ib, res, w);
                    }
                }
            }
            SOp::Dot { a, b, k, ia, ib } => {
                let (a, b) = (opnd(*a), opnd(*b));
                for (j, o) in res.chunks_exact_mut(w.max(1)).enumerate() {
                    let xa = a.row_ahead(j);
                    let xb = b.row_ahead(j);
                    for ((o, &pa), &pb) in o.iter_mut().zip(ia).zip(ib) {
                        let (ra, rb) = (&xa[pa * k..(pa + 1) * k], &xb[pb * k..(pb + 1) * k]);
                        *o = dot(ra, rb);
                    }
                }
            }
            SOp::Copy(x) => {
                let x = opnd(*x);
                match x.all(count) {
                    Some(xs) => res.copy_from_slice(xs),
                    None => {
                        for (j, o) in res.chunks_exact_mut(w.max(1)).enumerate() {
                            o.copy_from_slice(x.row(j));
                        }
                    }
                }
            }
            SOp::SumTo { x, .. } if self.fused[*x] => {
                // The sum of a product it alone reads (`with_fusion`): dot products of blocks.
                if let SOp::Binary { a, b, .. } = &self.ops[*x] {
                    let block = self.regs[*x].width / w.max(1);
                    let (a, b) = (opnd(*a), opnd(*b));
                    for (j, o) in res.chunks_exact_mut(w.max(1)).enumerate() {
                        let xa = a.row_ahead(j);
                        let xb = b.row_ahead(j);
                        let pairs = xa.chunks_exact(block).zip(xb.chunks_exact(block));
                        for (o, (pa, pb)) in o.iter_mut().zip(pairs) {
                            *o = dot(pa, pb);
                        }
                    }
                }
            }
            SOp::SumTo { x, to } => {
                let x = opnd(*x);
                // Sums over trailing axes (`to[i] = i / block`, a scalar result included) add
                // contiguous blocks; other shapes scatter element by element.
                let block = x.width / w.max(1);
                let blocks = block > 0 && to.iter().enumerate().all(|(i, &t)| t == i / block);
                for (j, o) in res.chunks_exact_mut(w.max(1)).enumerate() {
                    let xs = x.row(j);
                    if blocks {
                        for (o, b) in o.iter_mut().zip(xs.chunks_exact(block)) {
                            *o = sum(b);
                        }
                    } else {
                        o.iter_mut().for_each(|o| *o = T::ZERO);
                        for (&v, &t) in xs.iter().zip(to) {
                            o[t] += v;
                        }
                    }
                }
            }
            SOp::Permute { x, from } => {
                let x = opnd(*x);
                for (j, o) in res.chunks_exact_mut(w.max(1)).enumerate() {
                    let x = x.row(j);
                    for (o, &f) in o.iter_mut().zip(from) {
                        *o = x[f];
                    }
                }
            }
            SOp::Concat { xs, lead } => {
                let parts: Vec<(Opnd<T>, usize)> =
                    xs.iter().map(|&(x, wd)| (opnd(x), wd)).collect();
                for (j, o) in res.chunks_exact_mut(w.max(1)).enumerate() {
                    let mut at = 0;
                    for l in 0..*lead {
                        for &(x, width) in &parts {
                            let x = x.row(j);
                            o[at..at + width].copy_from_slice(&x[l * width..(l + 1) * width]);
                            at += width;
                        }
                    }
                }
            }
            SOp::MatVec { x, w: wv, map, form } => {
                let x = opnd(*x);
                for (j, o) in res.chunks_exact_mut(w.max(1)).enumerate() {
                    matvec(form, x.row(j), unsafe { wv.row(map.get(id(j))) }, o)
                }
            }
            SOp::Softmax(_)
            | SOp::Aggregate { .. }
            | SOp::GroupSize(_)
            | SOp::MaxGrad { .. }
            | SOp::Store { .. } => {}
        }
    }
}

/// Calls `f` with every register operand of `op`.
fn for_each_operand<T>(op: &SOp<T>, mut f: impl FnMut(usize)) {
    match op {
        SOp::Load { .. } | SOp::Const(_) | SOp::GroupSize(_) => {}
        SOp::Unary(_, x)
        | SOp::Copy(x)
        | SOp::MatVec { x, .. }
        | SOp::Softmax(x)
        | SOp::Aggregate { x, .. }
        | SOp::Store { x, .. }
        | SOp::SumTo { x, .. }
        | SOp::Permute { x, .. } => f(*x),
        SOp::Binary { a, b, .. } | SOp::Dot { a, b, .. } => {
            f(*a);
            f(*b);
        }
        SOp::UnaryGrad { x, dy, .. } | SOp::MaxGrad { x, dy, .. } => {
            f(*x);
            f(*dy);
        }
        SOp::Concat { xs, .. } => xs.iter().for_each(|&(x, _)| f(x)),
    }
}
