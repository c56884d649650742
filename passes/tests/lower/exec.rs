//! A tiny, slow executor of kernel plans in f64, written from the plan semantics in
//! `pigeon_ir::plan` (not from the lowering), so that lowered plans can be checked against the
//! reference interpreter. Temps sharing a slot share storage, so buffer reuse is tested too.

use pigeon_ir::inter::{AggGroup, AggOp, BinaryOp, Endpoint, Select, Shape};
use pigeon_ir::plan::{
    BufferId, BufferKind, Epilogue, Gemm, Kernel, Level, Plan, RowIndex, RowSpace, Schedule, Stmt,
    StmtOp, StoreMode, Traversal,
};
use pigeon_ir::shape::{broadcast, broadcast_strides, LinearForm};
use pigeon_ir::EntityId;
use pigeon_runtime::interp::{math, CompactTable, InEdges};
use pigeon_runtime::{HeteroGraph, Tensor, WeightStore};
use std::collections::HashMap;

/// Why this executor stops at backward elements.
const BACKWARD: &str = "this executor runs forward plans; backward plans are checked against \
                        the reference interpreter in tests/autodiff.rs";

pub struct Exec<'g> {
    g: &'g HeteroGraph,
    ntype: Vec<u32>,
    compact: [CompactTable; 2],
    in_edges: InEdges,
    /// Storage index of each buffer, and the storages.
    store_of: Vec<usize>,
    storage: Vec<Vec<f64>>,
    numel: Vec<usize>,
    rows: Vec<RowSpace>,
    shapes: Vec<Shape>,
}

fn ep_index(e: Endpoint) -> usize {
    if e == Endpoint::Src {
        0
    } else {
        1
    }
}

impl<'g> Exec<'g> {
    pub fn space_rows(&self, s: RowSpace) -> usize {
        match s {
            RowSpace::Nodes => self.g.num_nodes(),
            RowSpace::Edges => self.g.num_edges(),
            RowSpace::Compact(e) => self.compact[ep_index(e)].len(),
            RowSpace::Relations => self.g.num_relations(),
            RowSpace::NodeTypes => self.g.num_node_types(),
            RowSpace::One => 1,
        }
    }

    /// The row of a buffer with rows `target` read by row `i` of space `space` through `index`.
    fn index_row(&self, space: RowSpace, i: usize, index: RowIndex, target: RowSpace) -> usize {
        let g = self.g;
        match (index, space) {
            (RowIndex::This, _) if target == RowSpace::One => 0,
            (RowIndex::This, _) => i,
            (RowIndex::Node(e), RowSpace::Edges) => {
                (if e == Endpoint::Src { g.src[i] } else { g.dst[i] }) as usize
            }
            (RowIndex::Node(e), RowSpace::Compact(c)) if c == e => {
                self.compact[ep_index(e)].node[i] as usize
            }
            (RowIndex::EdgeToCompact(e), RowSpace::Edges) => {
                self.compact[ep_index(e)].edge_row[i] as usize
            }
            (RowIndex::Select(s), _) => self.select_row(space, i, s, target),
            _ => panic!("cannot read {target:?} rows from {space:?} rows by {index:?}"),
        }
    }

    fn select_row(&self, space: RowSpace, i: usize, s: Select, target: RowSpace) -> usize {
        let g = self.g;
        let ty = |v: u32| self.ntype[v as usize] as usize;
        match (s, space) {
            (Select::Same, _) if target == RowSpace::One => 0,
            (Select::Same, _) => i,
            (_, _) if target == RowSpace::One => 0,
            (Select::Relation, RowSpace::Edges) => g.rel[i] as usize,
            (Select::Relation, RowSpace::Compact(e)) => self.compact[ep_index(e)].rel[i] as usize,
            (Select::NodeType, RowSpace::Nodes) => ty(i as u32),
            (Select::SrcType, RowSpace::Edges) => ty(g.src[i]),
            (Select::DstType, RowSpace::Edges) => ty(g.dst[i]),
            (Select::SrcType, RowSpace::Compact(Endpoint::Src))
            | (Select::DstType, RowSpace::Compact(Endpoint::Dst)) => {
                let e = if s == Select::SrcType { 0 } else { 1 };
                ty(self.compact[e].node[i])
            }
            _ => panic!("{space:?} rows cannot select by {s:?}"),
        }
    }

    fn row(&self, b: BufferId, r: usize) -> &[f64] {
        let n = self.numel[b.index()];
        &self.storage[self.store_of[b.index()]][r * n..(r + 1) * n]
    }

    fn row_mut(&mut self, b: BufferId, r: usize) -> &mut [f64] {
        let n = self.numel[b.index()];
        &mut self.storage[self.store_of[b.index()]][r * n..(r + 1) * n]
    }

    fn zero(&mut self, b: BufferId) {
        let len = self.space_rows(self.rows[b.index()]) * self.numel[b.index()];
        self.storage[self.store_of[b.index()]][..len].fill(0.0);
    }
}

/// Runs `plan` on `graph`; returns its outputs in order.
pub fn run_plan(
    plan: &Plan,
    graph: &HeteroGraph,
    inputs: &[(String, Tensor)],
    weights: &WeightStore,
) -> Vec<(String, Tensor)> {
    let mut ex = Exec {
        g: graph,
        ntype: graph.node_type_ids(),
        compact: [
            CompactTable::build(graph, Endpoint::Src),
            CompactTable::build(graph, Endpoint::Dst),
        ],
        in_edges: InEdges::build(graph),
        store_of: Vec::new(),
        storage: Vec::new(),
        numel: plan.buffers.values().map(|b| b.shape.numel()).collect(),
        rows: plan.buffers.values().map(|b| b.rows).collect(),
        shapes: plan.buffers.values().map(|b| b.shape.clone()).collect(),
    };
    let mut slot_store: HashMap<u32, usize> = HashMap::new();
    for b in plan.buffers.values() {
        let len = ex.space_rows(b.rows) * b.shape.numel();
        let data = match &b.kind {
            BufferKind::Input(n) => {
                inputs.iter().find(|(m, _)| m == n).expect("input").1.data.clone()
            }
            BufferKind::Weight(w) => weights.get(*w).expect("weight").data.clone(),
            _ => vec![f64::NAN; len],
        };
        assert_eq!(data.len(), len, "buffer {} has the wrong size", b.name);
        let idx = match (b.kind == BufferKind::Temp, b.slot) {
            (true, Some(s)) => match slot_store.get(&s) {
                Some(&i) => {
                    if ex.storage[i].len() < len {
                        ex.storage[i].resize(len, f64::NAN);
                    }
                    i
                }
                None => {
                    ex.storage.push(data);
                    slot_store.insert(s, ex.storage.len() - 1);
                    ex.storage.len() - 1
                }
            },
            _ => {
                ex.storage.push(data);
                ex.storage.len() - 1
            }
        };
        ex.store_of.push(idx);
    }
    for k in plan.kernels.values() {
        match k {
            Kernel::Gemm(g) => gemm(&mut ex, g),
            Kernel::Traversal(t) => traversal(&mut ex, t),
            Kernel::WeightGrad(_) => panic!("{BACKWARD}"),
        }
    }
    plan.outputs
        .iter()
        .map(|(n, b)| {
            let buf = &plan.buffers[*b];
            let rows = ex.space_rows(buf.rows);
            let data = (0..rows).flat_map(|r| ex.row(*b, r).to_vec()).collect();
            (n.clone(), Tensor::from_vec(rows, buf.shape.clone(), data).expect("tensor"))
        })
        .collect()
}

fn contract(form: &LinearForm, x: &[f64], w: &[f64]) -> Vec<f64> {
    match *form {
        LinearForm::Plain { k, n } => {
            (0..n).map(|j| (0..k).map(|kk| x[kk] * w[kk * n + j]).sum()).collect()
        }
        LinearForm::Batched { batch, k, n } => (0..batch * n)
            .map(|o| {
                let (b, j) = (o / n, o % n);
                (0..k).map(|kk| x[b * k + kk] * w[b * k * n + kk * n + j]).sum()
            })
            .collect(),
        LinearForm::Broadcast { batch, k, n } => (0..batch * n)
            .map(|o| {
                let (b, j) = (o / n, o % n);
                (0..k).map(|kk| x[b * k + kk] * w[kk * n + j]).sum()
            })
            .collect(),
    }
}

fn binop(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Max => a.max(b),
    }
}

/// Element-wise `op` with front-aligned broadcasting.
fn bin(op: BinaryOp, a: &[f64], sa: &Shape, b: &[f64], sb: &Shape) -> Vec<f64> {
    let out = broadcast(sa, sb).expect("broadcast");
    let r = out.rank();
    let (ta, tb) = (broadcast_strides(sa, r), broadcast_strides(sb, r));
    (0..out.numel())
        .map(|lin| {
            let (mut rem, mut oa, mut ob) = (lin, 0, 0);
            for ax in (0..r).rev() {
                let c = rem % out.0[ax];
                rem /= out.0[ax];
                oa += c * ta[ax];
                ob += c * tb[ax];
            }
            binop(op, a[oa], b[ob])
        })
        .collect()
}

fn dot(a: &[f64], sa: &Shape, b: &[f64], sb: &Shape) -> Vec<f64> {
    let k = *sa.0.last().expect("rank");
    let la = Shape(sa.0[..sa.rank() - 1].to_vec());
    let lb = Shape(sb.0[..sb.rank() - 1].to_vec());
    let out = broadcast(&la, &lb).expect("dot lead");
    let r = out.rank();
    let (ta, tb) = (broadcast_strides(&la, r), broadcast_strides(&lb, r));
    (0..out.numel())
        .map(|lin| {
            let (mut rem, mut oa, mut ob) = (lin, 0, 0);
            for ax in (0..r).rev() {
                let c = rem % out.0[ax];
                rem /= out.0[ax];
                oa += c * ta[ax];
                ob += c * tb[ax];
            }
            (0..k).map(|kk| a[oa * k + kk] * b[ob * k + kk]).sum()
        })
        .collect()
}

fn gemm(ex: &mut Exec, g: &Gemm) {
    if g.store == StoreMode::AddIntoDst {
        ex.zero(g.c);
    }
    for i in 0..ex.space_rows(g.rows) {
        let ar = ex.index_row(g.rows, i, g.gather, ex.rows[g.a.index()]);
        let br = ex.index_row(g.rows, i, RowIndex::Select(g.segment), ex.rows[g.b.index()]);
        let mut y = contract(&g.form, ex.row(g.a, ar), ex.row(g.b, br));
        for e in &g.epilogue {
            match e {
                Epilogue::Scale { buf, index } => {
                    let r = ex.index_row(g.rows, i, *index, ex.rows[buf.index()]);
                    let s = ex.row(*buf, r)[0];
                    y.iter_mut().for_each(|v| *v *= s);
                }
                Epilogue::Add { buf, index } => {
                    let r = ex.index_row(g.rows, i, *index, ex.rows[buf.index()]);
                    let row = ex.row(*buf, r).to_vec();
                    let (sy, sb) = (&ex.shapes[g.c.index()], &ex.shapes[buf.index()]);
                    y = bin(BinaryOp::Add, &y, sy, &row, sb);
                }
                Epilogue::Unary(op) => y.iter_mut().for_each(|v| *v = math::unary(*op, *v)),
            }
        }
        match g.store {
            StoreMode::Write => ex.row_mut(g.c, i).copy_from_slice(&y),
            StoreMode::AddIntoDst => {
                let d = ex.g.dst[i] as usize;
                ex.row_mut(g.c, d).iter_mut().zip(&y).for_each(|(o, v)| *o += v);
            }
            StoreMode::AddIntoSrc | StoreMode::AddIntoCompact(_) => panic!("{BACKWARD}"),
        }
    }
}

/// One statement of a row/edge evaluation; `regs` holds earlier registers of this row.
fn eval(
    ex: &mut Exec,
    space: RowSpace,
    i: usize,
    s: &Stmt,
    body: &[Stmt],
    regs: &[Vec<f64>],
) -> Vec<f64> {
    let sh = |r: pigeon_ir::plan::RegId| &body[r.index()].shape;
    match &s.op {
        StmtOp::Load { buf, index } => {
            let r = ex.index_row(space, i, *index, ex.rows[buf.index()]);
            ex.row(*buf, r).to_vec()
        }
        StmtOp::Const(c) => vec![*c],
        StmtOp::Unary { op, x } => regs[x.index()].iter().map(|&v| math::unary(*op, v)).collect(),
        StmtOp::Binary { op, a, b } => bin(*op, &regs[a.index()], sh(*a), &regs[b.index()], sh(*b)),
        StmtOp::Dot { a, b } => dot(&regs[a.index()], sh(*a), &regs[b.index()], sh(*b)),
        StmtOp::View { x, .. } => regs[x.index()].clone(),
        StmtOp::Concat { xs } => {
            let last = |r: pigeon_ir::plan::RegId| *sh(r).0.last().expect("rank");
            let lead: usize = sh(xs[0]).0[..sh(xs[0]).rank() - 1].iter().product();
            let mut out = Vec::new();
            for l in 0..lead {
                for &x in xs {
                    let n = last(x);
                    out.extend_from_slice(&regs[x.index()][l * n..(l + 1) * n]);
                }
            }
            out
        }
        StmtOp::MatVec { x, w, select, form } => {
            let r = ex.index_row(space, i, RowIndex::Select(*select), ex.rows[w.index()]);
            contract(form, &regs[x.index()], ex.row(*w, r))
        }
        StmtOp::Store { buf, x, mode } => {
            let v = regs[x.index()].clone();
            match mode {
                StoreMode::Write => ex.row_mut(*buf, i).copy_from_slice(&v),
                StoreMode::AddIntoDst => {
                    let d = ex.g.dst[i] as usize;
                    ex.row_mut(*buf, d).iter_mut().zip(&v).for_each(|(o, a)| *o += a);
                }
                StoreMode::AddIntoSrc | StoreMode::AddIntoCompact(_) => panic!("{BACKWARD}"),
            }
            Vec::new()
        }
        StmtOp::Softmax { .. } | StmtOp::Aggregate { .. } => panic!("reduction outside node level"),
        _ => panic!("{BACKWARD}"),
    }
}

fn traversal(ex: &mut Exec, t: &Traversal) {
    for s in &t.body {
        if let StmtOp::Store { buf, mode: StoreMode::AddIntoDst, .. } = s.op {
            ex.zero(buf);
        }
    }
    match t.schedule {
        Schedule::Rows(space) => rows(ex, space, &t.body),
        Schedule::EdgeParallel => rows(ex, RowSpace::Edges, &t.body),
        Schedule::NodeParallel => {
            for v in 0..ex.g.num_nodes() {
                node(ex, v, &t.body);
            }
        }
    }
}

fn rows(ex: &mut Exec, space: RowSpace, body: &[Stmt]) {
    for i in 0..ex.space_rows(space) {
        let mut regs: Vec<Vec<f64>> = Vec::new();
        for s in body {
            assert_eq!(s.level, Level::Edge);
            let v = eval(ex, space, i, s, body, &regs);
            regs.push(v);
        }
    }
}

/// Node `v` of a node-parallel traversal: edge statements column by column over its incoming
/// edges (so that softmax sees them all), then node statements.
fn node(ex: &mut Exec, v: usize, body: &[Stmt]) {
    let edges: Vec<usize> = ex.in_edges.of(v).iter().map(|&e| e as usize).collect();
    let mut edge_regs: Vec<Vec<Vec<f64>>> = vec![Vec::new(); edges.len()];
    let mut node_regs: Vec<Vec<f64>> = Vec::new();
    for s in body {
        if s.level == Level::Edge {
            if let StmtOp::Softmax { x } = s.op {
                let cols: Vec<&Vec<f64>> = edge_regs.iter().map(|r| &r[x.index()]).collect();
                let n = s.shape.numel();
                let mx: Vec<f64> = (0..n)
                    .map(|j| cols.iter().map(|c| c[j]).fold(f64::NEG_INFINITY, f64::max))
                    .collect();
                let ex_: Vec<Vec<f64>> =
                    cols.iter().map(|c| (0..n).map(|j| (c[j] - mx[j]).exp()).collect()).collect();
                let sum: Vec<f64> = (0..n).map(|j| ex_.iter().map(|e| e[j]).sum()).collect();
                for (p, e) in ex_.into_iter().enumerate() {
                    edge_regs[p].push((0..n).map(|j| e[j] / sum[j]).collect());
                }
            } else {
                for (p, &e) in edges.iter().enumerate() {
                    let val = eval(ex, RowSpace::Edges, e, s, body, &edge_regs[p]);
                    edge_regs[p].push(val);
                }
            }
            node_regs.push(Vec::new());
            continue;
        }
        let val = match s.op {
            StmtOp::Aggregate { op, group, x } => {
                aggregate(ex, &edges, &edge_regs, x.index(), op, group, s.shape.numel())
            }
            _ => {
                // Node statements read node registers; edge slots are placeholders.
                let regs: Vec<Vec<f64>> = node_regs.clone();
                eval(ex, RowSpace::Nodes, v, s, body, &regs)
            }
        };
        for r in edge_regs.iter_mut() {
            r.push(Vec::new());
        }
        node_regs.push(val);
    }
}

fn aggregate(
    ex: &Exec,
    edges: &[usize],
    edge_regs: &[Vec<Vec<f64>>],
    x: usize,
    op: AggOp,
    group: AggGroup,
    n: usize,
) -> Vec<f64> {
    let reduce = |idx: &[usize]| -> Vec<f64> {
        if idx.is_empty() {
            return vec![0.0; n];
        }
        (0..n)
            .map(|j| {
                let vals = idx.iter().map(|&p| edge_regs[p][x][j]);
                match op {
                    AggOp::Sum => vals.sum(),
                    AggOp::Mean => vals.sum::<f64>() / idx.len() as f64,
                    AggOp::Max => vals.fold(f64::NEG_INFINITY, f64::max),
                }
            })
            .collect()
    };
    let all: Vec<usize> = (0..edges.len()).collect();
    match group {
        AggGroup::All => reduce(&all),
        AggGroup::PerRelation => {
            let mut out = vec![0.0; n];
            let mut rels: Vec<u32> = edges.iter().map(|&e| ex.g.rel[e]).collect();
            rels.sort_unstable();
            rels.dedup();
            for r in rels {
                let idx: Vec<usize> =
                    all.iter().copied().filter(|&p| ex.g.rel[edges[p]] == r).collect();
                for (o, v) in out.iter_mut().zip(reduce(&idx)) {
                    *o += v;
                }
            }
            out
        }
    }
}
