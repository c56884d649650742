//! Tests of the CPU back end and of the graph layouts: hand-built plans (struct literals) on
//! small adversarial graphs, checked against expectations computed independently here (naive
//! loops for the GEMM template) or against the reference interpreter on the equivalent
//! inter-IR module (traversals), in f64 (1e-10) and f32 (1e-4 relative to the output's scale).
//!
//! The hand-made graph (7 nodes, node types 0 = {0..3}, 1 = {4, 5}, 2 = {6}; relation 2 has no
//! edges, node type 2 has none either; node 6 is isolated; nodes 4, 5 have no incoming edge):
//!
//! ```text
//! e0: 0 -> 2 r0   e1: 0 -> 2 r0 (multi-edge)   e2: 1 -> 1 r0 (self-loop)   e3: 3 -> 2 r1
//! e4: 2 -> 0 r1   e5: 4 -> 3 r1                e6: 5 -> 3 r0               e7: 1 -> 2 r1
//! ```

mod common;

use common::hand_graph;
use pigeon_ir::builder::ModuleBuilder;
use pigeon_ir::plan::{
    Buffer, BufferId, BufferKind, Epilogue, Gemm, Kernel, Layout, Level, Plan, RegId, RowIndex,
    RowSpace, Schedule, Stmt, StmtOp, StoreMode, Traversal,
};
use pigeon_ir::shape::LinearForm;
use pigeon_ir::{
    AggGroup, AggOp, Arena, BinaryOp, DType, Domain, Endpoint, EntityId, Index, Init, Module,
    Select, Shape, UnaryOp, Weight, WeightId, WeightKind,
};
use pigeon_runtime::backend::Backend;
use pigeon_runtime::cpu::{CpuBackend, Precision};
use pigeon_runtime::graph::Relation;
use pigeon_runtime::layout::{graph_stats, Layouts};
use pigeon_runtime::rng::Rng;
use pigeon_runtime::{interpret, load_graph, HeteroGraph, RuntimeError, Tensor, WeightStore};

fn single_edge_graph() -> HeteroGraph {
    let rel = |n: &str| Relation { name: n.into(), src_type: None, dst_type: None };
    HeteroGraph {
        name: "single".into(),
        node_types: vec!["a".into(), "b".into()],
        type_offsets: vec![0, 2, 3],
        relations: vec![rel("r0"), rel("r1")],
        src: vec![0],
        dst: vec![1],
        rel: vec![1],
        base_relations: 2,
        ..HeteroGraph::default()
    }
}

/// The graphs every kernel runs on: hand-made, one edge, and a random one whose relations have
/// more edges than a GEMM chunk.
fn graphs() -> Vec<HeteroGraph> {
    let big = load_graph("synthetic:nodes=60,edges=900,relations=3,ntypes=2,seed=1")
        .unwrap_or_else(|e| panic!("{e}"));
    vec![hand_graph(), single_edge_graph(), big]
}

fn ok<T>(r: Result<T, RuntimeError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

// ---------------------------------------------------------------- layouts

#[test]
fn layouts_have_known_answers() {
    let g = hand_graph();
    let all = [
        Layout::EdgesByRelation,
        Layout::InCsr,
        Layout::Compact(Endpoint::Src),
        Layout::Compact(Endpoint::Dst),
    ];
    let l = ok(Layouts::build(&g, &all));
    assert_eq!(l.node_type, vec![0, 0, 0, 0, 1, 1, 2]);
    let by_rel = l.edges_by_relation().unwrap_or_else(|| panic!("not built"));
    // r0: e2 (dst 1), e0, e1 (dst 2), e6 (dst 3); r1: e4 (dst 0), e3, e7 (dst 2), e5 (dst 3).
    assert_eq!(by_rel.order, vec![2, 0, 1, 6, 4, 3, 7, 5]);
    assert_eq!(by_rel.offsets, vec![0, 4, 8, 8]);
    let csr = l.in_csr().unwrap_or_else(|| panic!("not built"));
    assert_eq!(csr.offsets, vec![0, 1, 2, 6, 8, 8, 8, 8]);
    assert_eq!(csr.edges, vec![4, 2, 0, 1, 3, 7, 5, 6]);
    assert_eq!(csr.of(2), &[0, 1, 3, 7]);
    assert!(csr.of(6).is_empty() && csr.of(99).is_empty());
    // Unique (src, rel): r0 {0, 1, 5}, r1 {1, 2, 3, 4}.
    let src = l.compact(Endpoint::Src).unwrap_or_else(|| panic!("not built"));
    assert_eq!(src.node, vec![0, 1, 5, 1, 2, 3, 4]);
    assert_eq!(src.rel, vec![0, 0, 0, 1, 1, 1, 1]);
    assert_eq!(src.rel_offsets, vec![0, 3, 7, 7]);
    assert_eq!(src.edge_row, vec![0, 0, 1, 5, 4, 6, 2, 3]);
    // Unique (dst, rel): r0 {1, 2, 3}, r1 {0, 2, 3}.
    let dst = l.compact(Endpoint::Dst).unwrap_or_else(|| panic!("not built"));
    assert_eq!(dst.node, vec![1, 2, 3, 0, 2, 3]);
    assert_eq!(dst.rel_offsets, vec![0, 3, 6, 6]);
    assert_eq!(dst.edge_row, vec![1, 1, 0, 4, 3, 5, 2, 4]);
    // Only what was asked for is built.
    let some = ok(Layouts::build(&g, &[Layout::InCsr]));
    assert!(some.edges_by_relation().is_none() && some.compact(Endpoint::Src).is_none());
    let s = graph_stats(&g);
    assert_eq!((s.nodes, s.edges, s.relations, s.node_types), (7, 8, 3, 3));
    assert_eq!((s.compact_src_rows, s.compact_dst_rows, s.max_in_degree), (7, 6, 4));
}

#[test]
fn layouts_reject_graphs_with_bad_ids() {
    let mut g = hand_graph();
    g.dst[3] = 7;
    assert!(matches!(Layouts::build(&g, &[]), Err(RuntimeError::InvalidGraph(_))));
    let b = CpuBackend::new(Precision::F64);
    let r = b.execute(&Plan::default(), &g, &[], &WeightStore::default());
    assert!(matches!(r, Err(RuntimeError::InvalidGraph(_))));
}

// ---------------------------------------------------------------- helpers

fn buffer(name: &str, rows: RowSpace, shape: &[usize], kind: BufferKind) -> Buffer {
    Buffer {
        name: name.into(),
        rows,
        shape: Shape(shape.to_vec()),
        dtype: DType::F32,
        kind,
        slot: None,
    }
}

fn rows_of(g: &HeteroGraph, space: RowSpace) -> usize {
    match space {
        RowSpace::Nodes => g.num_nodes(),
        RowSpace::Edges => g.num_edges(),
        RowSpace::Compact(ep) => compact_pairs(g, ep).len(),
        RowSpace::Relations => g.num_relations(),
        RowSpace::NodeTypes => g.num_node_types(),
        RowSpace::One => 1,
    }
}

/// Unique (relation, node) pairs of an endpoint, sorted (computed independently of the
/// runtime's layouts).
fn compact_pairs(g: &HeteroGraph, ep: Endpoint) -> Vec<(u32, u32)> {
    let nodes = if ep == Endpoint::Src { &g.src } else { &g.dst };
    let set: std::collections::BTreeSet<(u32, u32)> =
        g.rel.iter().copied().zip(nodes.iter().copied()).collect();
    set.into_iter().collect()
}

fn random(rows: usize, shape: &[usize], seed: &str) -> Tensor {
    let mut rng = Rng::for_stream(7, seed);
    let n = rows * shape.iter().product::<usize>();
    ok(Tensor::from_vec(
        rows,
        Shape(shape.to_vec()),
        (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect(),
    ))
}

/// Runs `plan` in f64 and f32 and returns both outputs by name.
type Outputs = Vec<(String, Tensor)>;

fn run_both(
    plan: &Plan,
    g: &HeteroGraph,
    inputs: &[(String, Tensor)],
    w: &WeightStore,
) -> (Outputs, Outputs) {
    let f64s = ok(CpuBackend::new(Precision::F64).execute(plan, g, inputs, w)).outputs;
    let f32s =
        ok(CpuBackend::with_threads(Precision::F32, Some(2)).execute(plan, g, inputs, w)).outputs;
    (f64s, f32s)
}

/// Checks `got` against `want`: within 1e-10 (f64) or 1e-4 of the largest |value| (f32).
fn check_close(what: &str, got: &Tensor, want: &Tensor, f32: bool) {
    assert_eq!((got.rows, &got.shape), (want.rows, &want.shape), "{what}: rows/shape");
    let scale = want.data.iter().fold(1.0f64, |m, x| m.max(x.abs()));
    let tol = if f32 { 1e-4 * scale } else { 1e-10 * scale };
    for (i, (a, b)) in got.data.iter().zip(&want.data).enumerate() {
        assert!((a - b).abs() <= tol, "{what}: value {i}: got {a}, want {b}");
    }
}

fn check_outputs(
    what: &str,
    plan: &Plan,
    g: &HeteroGraph,
    inputs: &[(String, Tensor)],
    w: &WeightStore,
    want: &[(String, Tensor)],
) {
    let (a, b) = run_both(plan, g, inputs, w);
    for (name, t) in want {
        for (got, f32) in [(&a, false), (&b, true)] {
            let got = got.iter().find(|(n, _)| n == name).map(|(_, t)| t);
            let got = got.unwrap_or_else(|| panic!("{what}: no output {name}"));
            check_close(
                &format!("{what} [{}] {name}", if f32 { "f32" } else { "f64" }),
                got,
                t,
                f32,
            );
        }
    }
}

// ---------------------------------------------------------------- GEMM

/// A GEMM configuration: iteration rows, segmentation, gather, and the kind of B.
struct GemmCase {
    rows: RowSpace,
    segment: Select,
    gather: RowIndex,
    a_rows: RowSpace,
    b_kind: WeightKind,
}

const GEMM_CASES: &[GemmCase] = &[
    GemmCase {
        rows: RowSpace::Edges,
        segment: Select::Relation,
        gather: RowIndex::Node(Endpoint::Src),
        a_rows: RowSpace::Nodes,
        b_kind: WeightKind::PerRelation,
    },
    GemmCase {
        rows: RowSpace::Edges,
        segment: Select::Relation,
        gather: RowIndex::This,
        a_rows: RowSpace::Edges,
        b_kind: WeightKind::PerRelation,
    },
    GemmCase {
        rows: RowSpace::Edges,
        segment: Select::Same,
        gather: RowIndex::Node(Endpoint::Dst),
        a_rows: RowSpace::Nodes,
        b_kind: WeightKind::Shared,
    },
    GemmCase {
        rows: RowSpace::Edges,
        segment: Select::SrcType,
        gather: RowIndex::Node(Endpoint::Src),
        a_rows: RowSpace::Nodes,
        b_kind: WeightKind::PerNodeType,
    },
    GemmCase {
        rows: RowSpace::Nodes,
        segment: Select::NodeType,
        gather: RowIndex::This,
        a_rows: RowSpace::Nodes,
        b_kind: WeightKind::PerNodeType,
    },
    GemmCase {
        rows: RowSpace::Nodes,
        segment: Select::Same,
        gather: RowIndex::This,
        a_rows: RowSpace::Nodes,
        b_kind: WeightKind::Shared,
    },
    GemmCase {
        rows: RowSpace::Compact(Endpoint::Src),
        segment: Select::Relation,
        gather: RowIndex::Node(Endpoint::Src),
        a_rows: RowSpace::Nodes,
        b_kind: WeightKind::PerRelation,
    },
];

/// A form: (A row shape, B slice shape, output shape, form).
type Form = (Vec<usize>, Vec<usize>, Vec<usize>, LinearForm);

/// The three forms.
fn forms() -> Vec<Form> {
    vec![
        (vec![4], vec![4, 3], vec![3], LinearForm::Plain { k: 4, n: 3 }),
        (vec![2, 4], vec![2, 4, 3], vec![2, 3], LinearForm::Batched { batch: 2, k: 4, n: 3 }),
        (vec![2, 4], vec![4, 3], vec![2, 3], LinearForm::Broadcast { batch: 2, k: 4, n: 3 }),
    ]
}

/// For iteration row `i`: (A row, B row, node of the row's destination when it has one).
fn gemm_maps(g: &HeteroGraph, c: &GemmCase, i: usize) -> (usize, usize, Option<usize>) {
    let ty = |v: u32| g.node_type(v) as usize;
    match c.rows {
        RowSpace::Edges => {
            let a = match c.gather {
                RowIndex::Node(Endpoint::Src) => g.src[i] as usize,
                RowIndex::Node(Endpoint::Dst) => g.dst[i] as usize,
                _ => i,
            };
            let b = match c.segment {
                Select::Relation => g.rel[i] as usize,
                Select::SrcType => ty(g.src[i]),
                _ => 0,
            };
            (a, b, Some(g.dst[i] as usize))
        }
        RowSpace::Nodes => (i, if c.segment == Select::NodeType { ty(i as u32) } else { 0 }, None),
        RowSpace::Compact(ep) => {
            let (r, v) = compact_pairs(g, ep)[i];
            (v as usize, r as usize, None)
        }
        _ => unreachable!(),
    }
}

/// Naive `x @ w` in a form.
fn contract(form: &LinearForm, x: &[f64], w: &[f64]) -> Vec<f64> {
    let mv = |x: &[f64], w: &[f64], k: usize, n: usize| -> Vec<f64> {
        (0..n).map(|j| (0..k).map(|kk| x[kk] * w[kk * n + j]).sum()).collect()
    };
    match *form {
        LinearForm::Plain { k, n } => mv(x, w, k, n),
        LinearForm::Batched { batch, k, n } => (0..batch)
            .flat_map(|b| mv(&x[b * k..(b + 1) * k], &w[b * k * n..(b + 1) * k * n], k, n))
            .collect(),
        LinearForm::Broadcast { batch, k, n } => {
            (0..batch).flat_map(|b| mv(&x[b * k..(b + 1) * k], w, k, n)).collect()
        }
    }
}

fn weights_of(decls: Vec<Weight>, g: &HeteroGraph) -> (Arena<WeightId, Weight>, WeightStore) {
    let mut m = Module::default();
    for d in decls {
        m.weights.push(d);
    }
    let store = WeightStore::init(&m, g.num_relations(), g.num_node_types(), 3);
    (m.weights, store)
}

fn gemm_case(g: &HeteroGraph, c: &GemmCase, form_i: usize, store: StoreMode, epi: bool) {
    let (a_shape, b_shape, c_shape, form) = forms().swap_remove(form_i);
    let (weights, wstore) = weights_of(
        vec![
            Weight {
                name: "B".into(),
                kind: c.b_kind,
                shape: Shape(b_shape.clone()),
                init: Init::Glorot,
            },
            Weight {
                name: "bias".into(),
                kind: WeightKind::Shared,
                shape: Shape(c_shape.clone()),
                init: Init::Glorot,
            },
        ],
        g,
    );
    let mut buffers = Arena::new();
    let a = buffers.push(buffer("a", c.a_rows, &a_shape, BufferKind::Input("a".into())));
    let b_rows = match c.b_kind {
        WeightKind::Shared => RowSpace::One,
        WeightKind::PerRelation => RowSpace::Relations,
        WeightKind::PerNodeType => RowSpace::NodeTypes,
    };
    let b = buffers.push(buffer("B", b_rows, &b_shape, BufferKind::Weight(WeightId::new(0))));
    let bias =
        buffers.push(buffer("bias", RowSpace::One, &c_shape, BufferKind::Weight(WeightId::new(1))));
    let scale = buffers.push(buffer("s", c.rows, &[], BufferKind::Input("s".into())));
    let c_rows = if store == StoreMode::AddIntoDst { RowSpace::Nodes } else { c.rows };
    let out = buffers.push(buffer("out", c_rows, &c_shape, BufferKind::Output("out".into())));
    let epilogue = if epi {
        vec![
            Epilogue::Scale { buf: scale, index: RowIndex::This },
            Epilogue::Add { buf: bias, index: RowIndex::Select(Select::Same) },
            Epilogue::Unary(UnaryOp::LeakyRelu(0.1)),
        ]
    } else {
        vec![]
    };
    let mut kernels = Arena::new();
    kernels.push(Kernel::Gemm(Gemm {
        rows: c.rows,
        segment: c.segment,
        a,
        gather: c.gather,
        b,
        form: form.clone(),
        epilogue,
        c: out,
        store,
    }));
    let plan = Plan {
        name: "gemm".into(),
        weights,
        buffers,
        layouts: vec![],
        kernels,
        outputs: vec![("out".into(), out)],
        ..Plan::default()
    };
    let n = rows_of(g, c.rows);
    let inputs = vec![
        ("a".to_string(), random(rows_of(g, c.a_rows), &a_shape, "a")),
        ("s".to_string(), random(n, &[], "s")),
    ];
    // The expectation, row by row.
    let width: usize = c_shape.iter().product();
    let mut want = Tensor::zeros(rows_of(g, c_rows), Shape(c_shape.clone()));
    let (bt, bias_t) = (wstore.get(WeightId::new(0)), wstore.get(WeightId::new(1)));
    let (bt, bias_t) =
        (bt.unwrap_or_else(|| panic!("B")), bias_t.unwrap_or_else(|| panic!("bias")));
    for i in 0..n {
        let (ar, br, dst) = gemm_maps(g, c, i);
        let mut y = contract(&form, inputs[0].1.row(ar), bt.row(br));
        if epi {
            for (j, v) in y.iter_mut().enumerate() {
                let t = *v * inputs[1].1.row(i)[0] + bias_t.row(0)[j];
                *v = if t > 0.0 { t } else { 0.1 * t };
            }
        }
        let row = if store == StoreMode::AddIntoDst {
            dst.unwrap_or_else(|| panic!("no dst"))
        } else {
            i
        };
        for (o, v) in want.row_mut(row).iter_mut().zip(&y) {
            *o += v;
        }
    }
    assert_eq!(want.data.len(), rows_of(g, c_rows) * width);
    let what =
        format!("{} rows {:?} seg {} form {form_i} {store:?} epi {epi}", g.name, c.rows, c.segment);
    check_outputs(&what, &plan, g, &inputs, &wstore, &[("out".into(), want)]);
}

#[test]
fn gemm_every_segmentation_form_store_and_epilogue() {
    for g in graphs() {
        for c in GEMM_CASES {
            for form_i in 0..3 {
                for epi in [false, true] {
                    gemm_case(&g, c, form_i, StoreMode::Write, epi);
                    if c.rows == RowSpace::Edges {
                        gemm_case(&g, c, form_i, StoreMode::AddIntoDst, epi);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- traversals

fn stmt(level: Level, op: StmtOp, shape: &[usize]) -> Stmt {
    Stmt { level, op, shape: Shape(shape.to_vec()) }
}

fn r(i: usize) -> RegId {
    RegId::new(i)
}

fn load(level: Level, buf: BufferId, index: RowIndex, shape: &[usize]) -> Stmt {
    stmt(level, StmtOp::Load { buf, index }, shape)
}

fn store(level: Level, buf: BufferId, x: usize, mode: StoreMode) -> Stmt {
    stmt(level, StmtOp::Store { buf, x: r(x), mode }, &[])
}

fn bop(level: Level, op: BinaryOp, a: usize, b: usize, shape: &[usize]) -> Stmt {
    stmt(level, StmtOp::Binary { op, a: r(a), b: r(b) }, shape)
}

fn plan_of(
    m: &Module,
    buffers: Arena<BufferId, Buffer>,
    kernels: Vec<Kernel>,
    outputs: &[(&str, BufferId)],
) -> Plan {
    let mut ks = Arena::new();
    for k in kernels {
        ks.push(k);
    }
    Plan {
        name: m.name.clone(),
        weights: m.weights.clone(),
        buffers,
        kernels: ks,
        outputs: outputs.iter().map(|(n, b)| (n.to_string(), *b)).collect(),
        ..Plan::default()
    }
}

fn trav(schedule: Schedule, body: Vec<Stmt>) -> Kernel {
    Kernel::Traversal(Traversal { schedule, body })
}

/// Runs `m` in the interpreter and `plan` on the CPU, on every test graph, with random inputs
/// for `inputs` (name, domain, shape).
fn check_against_interp(what: &str, m: &Module, plan: &Plan, inputs: &[(&str, Domain, &[usize])]) {
    for g in graphs() {
        let bound: Vec<(String, Tensor)> = inputs
            .iter()
            .map(|(n, d, s)| {
                let rows = if *d == Domain::Node { g.num_nodes() } else { g.num_edges() };
                (n.to_string(), random(rows, s, n))
            })
            .collect();
        let mut w = WeightStore::init(m, g.num_relations(), g.num_node_types(), 5);
        w.perturb(0.3, 2);
        let want = ok(interpret(m, &g, &bound, &w));
        check_outputs(&format!("{what} on {}", g.name), plan, &g, &bound, &w, &want);
    }
}

fn built(b: ModuleBuilder) -> Module {
    b.finish().unwrap_or_else(|e| panic!("{e}"))
}

fn v<T>(r: Result<T, pigeon_ir::IrError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn node_parallel_attention_with_softmax_and_heads() {
    let mut b = ModuleBuilder::new("gat");
    let h = v(b.input("h", Domain::Node, &[2, 3]));
    let a = v(b.weight("a", WeightKind::PerRelation, &[2, 3], Init::Glorot));
    let z = v(b.gather(h, Index::Node(Endpoint::Src)));
    let asl = v(b.slice(a, Select::Relation, Domain::Edge));
    let s = v(b.dot(z, asl));
    let l = v(b.unary(UnaryOp::LeakyRelu(0.2), s));
    let al = v(b.softmax(l));
    let msg = v(b.binary(BinaryOp::Mul, al, z));
    let agg = v(b.aggregate(AggOp::Sum, AggGroup::All, msg));
    let out = v(b.binary(BinaryOp::Add, agg, h));
    b.output("out", out);
    b.output("alpha", al);
    let m = built(b);
    let mut bufs = Arena::new();
    let hb = bufs.push(buffer("h", RowSpace::Nodes, &[2, 3], BufferKind::Input("h".into())));
    let ab =
        bufs.push(buffer("a", RowSpace::Relations, &[2, 3], BufferKind::Weight(WeightId::new(0))));
    let ob = bufs.push(buffer("out", RowSpace::Nodes, &[2, 3], BufferKind::Output("out".into())));
    let alb = bufs.push(buffer("alpha", RowSpace::Edges, &[2], BufferKind::Output("alpha".into())));
    let (e, n) = (Level::Edge, Level::Node);
    let body = vec![
        load(e, hb, RowIndex::Node(Endpoint::Src), &[2, 3]),
        load(e, ab, RowIndex::Select(Select::Relation), &[2, 3]),
        stmt(e, StmtOp::Dot { a: r(0), b: r(1) }, &[2]),
        stmt(e, StmtOp::Unary { op: UnaryOp::LeakyRelu(0.2), x: r(2) }, &[2]),
        stmt(e, StmtOp::Softmax { x: r(3) }, &[2]),
        bop(e, BinaryOp::Mul, 4, 0, &[2, 3]),
        stmt(n, StmtOp::Aggregate { op: AggOp::Sum, group: AggGroup::All, x: r(5) }, &[2, 3]),
        load(n, hb, RowIndex::This, &[2, 3]),
        bop(n, BinaryOp::Add, 6, 7, &[2, 3]),
        store(n, ob, 8, StoreMode::Write),
        store(e, alb, 4, StoreMode::Write),
    ];
    let plan =
        plan_of(&m, bufs, vec![trav(Schedule::NodeParallel, body)], &[("out", ob), ("alpha", alb)]);
    check_against_interp("attention", &m, &plan, &[("h", Domain::Node, &[2, 3])]);
}

#[test]
fn node_parallel_aggregations() {
    for op in [AggOp::Sum, AggOp::Mean, AggOp::Max] {
        for group in [AggGroup::All, AggGroup::PerRelation] {
            let mut b = ModuleBuilder::new("agg");
            let x = v(b.input("x", Domain::Edge, &[2]));
            let a = v(b.aggregate(op, group, x));
            b.output("out", a);
            let m = built(b);
            let mut bufs = Arena::new();
            let xb = bufs.push(buffer("x", RowSpace::Edges, &[2], BufferKind::Input("x".into())));
            let ob =
                bufs.push(buffer("out", RowSpace::Nodes, &[2], BufferKind::Output("out".into())));
            let body = vec![
                load(Level::Edge, xb, RowIndex::This, &[2]),
                stmt(Level::Node, StmtOp::Aggregate { op, group, x: r(0) }, &[2]),
                store(Level::Node, ob, 1, StoreMode::Write),
            ];
            let plan = plan_of(&m, bufs, vec![trav(Schedule::NodeParallel, body)], &[("out", ob)]);
            check_against_interp(
                &format!("{op:?} {group:?}"),
                &m,
                &plan,
                &[("x", Domain::Edge, &[2])],
            );
        }
    }
}

#[test]
fn sums_into_destinations_under_every_schedule() {
    let mut b = ModuleBuilder::new("sum");
    let h = v(b.input("h", Domain::Node, &[3]));
    let norm = v(b.input("norm", Domain::Edge, &[]));
    let z = v(b.gather(h, Index::Node(Endpoint::Src)));
    let msg = v(b.binary(BinaryOp::Mul, z, norm));
    let agg = v(b.aggregate(AggOp::Sum, AggGroup::All, msg));
    let root = v(b.unary(UnaryOp::Relu, h));
    let out = v(b.binary(BinaryOp::Add, root, agg));
    b.output("out", out);
    let m = built(b);
    for schedule in
        [Schedule::EdgeParallel, Schedule::Rows(RowSpace::Edges), Schedule::NodeParallel]
    {
        let mut bufs = Arena::new();
        let hb = bufs.push(buffer("h", RowSpace::Nodes, &[3], BufferKind::Input("h".into())));
        let nb = bufs.push(buffer("norm", RowSpace::Edges, &[], BufferKind::Input("norm".into())));
        let ob = bufs.push(buffer("out", RowSpace::Nodes, &[3], BufferKind::Output("out".into())));
        let e = Level::Edge;
        let first = vec![
            load(e, hb, RowIndex::This, &[3]),
            stmt(e, StmtOp::Unary { op: UnaryOp::Relu, x: r(0) }, &[3]),
            store(e, ob, 1, StoreMode::Write),
        ];
        let second = vec![
            load(e, hb, RowIndex::Node(Endpoint::Src), &[3]),
            load(e, nb, RowIndex::This, &[]),
            bop(e, BinaryOp::Mul, 0, 1, &[3]),
            store(e, ob, 2, StoreMode::AddIntoDst),
        ];
        let kernels = vec![trav(Schedule::Rows(RowSpace::Nodes), first), trav(schedule, second)];
        let plan = plan_of(&m, bufs, kernels, &[("out", ob)]);
        check_against_interp(
            &format!("{schedule:?}"),
            &m,
            &plan,
            &[("h", Domain::Node, &[3]), ("norm", Domain::Edge, &[])],
        );
    }
}

#[test]
fn rows_with_matvec_concat_view_and_constants() {
    for (w_shape, form) in [
        (vec![2, 3, 2], LinearForm::Batched { batch: 2, k: 3, n: 2 }),
        (vec![3, 2], LinearForm::Broadcast { batch: 2, k: 3, n: 2 }),
    ] {
        let mut b = ModuleBuilder::new("rows");
        let h = v(b.input("h", Domain::Node, &[2, 3]));
        let w = v(b.weight("W", WeightKind::PerRelation, &w_shape, Init::Glorot));
        let z = v(b.gather(h, Index::Node(Endpoint::Src)));
        let lin = v(b.linear(z, w, Select::Relation));
        let c = v(b.concat(&[lin, z]));
        let flat = v(b.view(c, &[10]));
        let k = v(b.constant(0.5));
        let y = v(b.binary(BinaryOp::Div, flat, k));
        let y = v(b.binary(BinaryOp::Max, y, k));
        b.output("out", y);
        let m = built(b);
        let mut bufs = Arena::new();
        let hb = bufs.push(buffer("h", RowSpace::Nodes, &[2, 3], BufferKind::Input("h".into())));
        let wb = bufs.push(buffer(
            "W",
            RowSpace::Relations,
            &w_shape,
            BufferKind::Weight(WeightId::new(0)),
        ));
        let ob = bufs.push(buffer("out", RowSpace::Edges, &[10], BufferKind::Output("out".into())));
        let e = Level::Edge;
        let body = vec![
            load(e, hb, RowIndex::Node(Endpoint::Src), &[2, 3]),
            stmt(
                e,
                StmtOp::MatVec { x: r(0), w: wb, select: Select::Relation, form: form.clone() },
                &[2, 2],
            ),
            stmt(e, StmtOp::Concat { xs: vec![r(1), r(0)] }, &[2, 5]),
            stmt(e, StmtOp::View { x: r(2), shape: Shape(vec![10]) }, &[10]),
            stmt(e, StmtOp::Const(0.5), &[]),
            bop(e, BinaryOp::Div, 3, 4, &[10]),
            bop(e, BinaryOp::Max, 5, 4, &[10]),
            store(e, ob, 6, StoreMode::Write),
        ];
        let plan =
            plan_of(&m, bufs, vec![trav(Schedule::Rows(RowSpace::Edges), body)], &[("out", ob)]);
        check_against_interp(&format!("{form:?}"), &m, &plan, &[("h", Domain::Node, &[2, 3])]);
    }
}

/// A compact-row kernel (once per unique (src, relation)) read back per edge through the
/// edge-to-row index, then a per-relation mean; the temp shares a slot with nothing live.
#[test]
fn compact_rows_read_back_per_edge() {
    let mut b = ModuleBuilder::new("compact");
    let h = v(b.input("h", Domain::Node, &[3]));
    let w = v(b.weight("W", WeightKind::PerRelation, &[3, 2], Init::Glorot));
    let z = v(b.gather(h, Index::Node(Endpoint::Src)));
    let lin = v(b.linear(z, w, Select::Relation));
    let agg = v(b.aggregate(AggOp::Mean, AggGroup::PerRelation, lin));
    b.output("out", agg);
    let m = built(b);
    let mut bufs = Arena::new();
    let hb = bufs.push(buffer("h", RowSpace::Nodes, &[3], BufferKind::Input("h".into())));
    let wb =
        bufs.push(buffer("W", RowSpace::Relations, &[3, 2], BufferKind::Weight(WeightId::new(0))));
    let cb = bufs.push(Buffer {
        slot: Some(0),
        ..buffer("c", RowSpace::Compact(Endpoint::Src), &[2], BufferKind::Temp)
    });
    let ob = bufs.push(buffer("out", RowSpace::Nodes, &[2], BufferKind::Output("out".into())));
    let e = Level::Edge;
    let k0 = vec![
        load(e, hb, RowIndex::Node(Endpoint::Src), &[3]),
        stmt(
            e,
            StmtOp::MatVec {
                x: r(0),
                w: wb,
                select: Select::Relation,
                form: LinearForm::Plain { k: 3, n: 2 },
            },
            &[2],
        ),
        store(e, cb, 1, StoreMode::Write),
    ];
    let k1 = vec![
        load(e, cb, RowIndex::EdgeToCompact(Endpoint::Src), &[2]),
        stmt(
            Level::Node,
            StmtOp::Aggregate { op: AggOp::Mean, group: AggGroup::PerRelation, x: r(0) },
            &[2],
        ),
        store(Level::Node, ob, 1, StoreMode::Write),
    ];
    let kernels = vec![
        trav(Schedule::Rows(RowSpace::Compact(Endpoint::Src)), k0),
        trav(Schedule::NodeParallel, k1),
    ];
    let plan = plan_of(&m, bufs, kernels, &[("out", ob)]);
    check_against_interp("compact", &m, &plan, &[("h", Domain::Node, &[3])]);
}

// ---------------------------------------------------------------- memory and errors

/// `out = relu(relu(h) * 2) + 1` through two temps: sharing a slot gives the same result with
/// less memory.
#[test]
fn temps_sharing_a_slot_share_memory() {
    let g = hand_graph();
    let build = |slots: [Option<u32>; 3]| {
        let mut bufs = Arena::new();
        let hb = bufs.push(buffer("h", RowSpace::Nodes, &[4], BufferKind::Input("h".into())));
        let t: Vec<BufferId> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                bufs.push(Buffer {
                    slot: *s,
                    ..buffer(&format!("t{i}"), RowSpace::Nodes, &[4], BufferKind::Temp)
                })
            })
            .collect();
        let ob = bufs.push(buffer("out", RowSpace::Nodes, &[4], BufferKind::Output("out".into())));
        let e = Level::Edge;
        let step = |from: BufferId, to: BufferId, op: BinaryOp, c: f64| {
            trav(
                Schedule::Rows(RowSpace::Nodes),
                vec![
                    load(e, from, RowIndex::This, &[4]),
                    stmt(e, StmtOp::Const(c), &[]),
                    bop(e, op, 0, 1, &[4]),
                    stmt(e, StmtOp::Unary { op: UnaryOp::Relu, x: r(2) }, &[4]),
                    store(e, to, 3, StoreMode::Write),
                ],
            )
        };
        let kernels = vec![
            step(hb, t[0], BinaryOp::Mul, 1.0),
            step(t[0], t[1], BinaryOp::Mul, 2.0),
            step(t[1], t[2], BinaryOp::Add, 1.0),
            step(t[2], ob, BinaryOp::Add, 0.0),
        ];
        plan_of(&Module::default(), bufs, kernels, &[("out", ob)])
    };
    let h = random(7, &[4], "h");
    let inputs = vec![("h".to_string(), h.clone())];
    let want: Vec<f64> = h.data.iter().map(|x| (x.max(0.0) * 2.0).max(0.0) + 1.0).collect();
    let b = CpuBackend::new(Precision::F64);
    let shared =
        ok(b.execute(&build([Some(0), Some(1), Some(0)]), &g, &inputs, &WeightStore::default()));
    let apart = ok(b.execute(&build([None, None, None]), &g, &inputs, &WeightStore::default()));
    for ex in [&shared, &apart] {
        assert_eq!(ex.outputs[0].1.data, want);
        assert_eq!(ex.profile.per_kernel.len(), 4);
    }
    // h, out and 3 temps of 7 x 4 f64 apart; 2 slots shared.
    assert_eq!(apart.profile.peak_bytes, 5 * 28 * 8);
    assert_eq!(shared.profile.peak_bytes, 4 * 28 * 8);
    // A kernel writing into the slot it reads from is refused.
    let err = b.execute(&build([Some(0), Some(0), None]), &g, &inputs, &WeightStore::default());
    assert!(matches!(&err, Err(RuntimeError::Internal(m)) if m.contains("race")), "{err:?}");
}

#[test]
fn errors_are_values() {
    let g = hand_graph();
    let mut bufs = Arena::new();
    let hb = bufs.push(buffer("h", RowSpace::Nodes, &[2], BufferKind::Input("h".into())));
    let tb = bufs.push(buffer("t", RowSpace::Nodes, &[2], BufferKind::Temp));
    let ob = bufs.push(buffer("out", RowSpace::Nodes, &[2], BufferKind::Output("out".into())));
    let e = Level::Edge;
    let copy = |from: BufferId, to: BufferId| {
        trav(
            Schedule::Rows(RowSpace::Nodes),
            vec![load(e, from, RowIndex::This, &[2]), store(e, to, 0, StoreMode::Write)],
        )
    };
    let b = CpuBackend::new(Precision::F32);
    let w = WeightStore::default();
    let good = plan_of(&Module::default(), bufs.clone(), vec![copy(hb, ob)], &[("out", ob)]);
    let h = random(7, &[2], "h");
    assert!(b.execute(&good, &g, &[("h".into(), h.clone())], &w).is_ok());
    // Missing input, wrong rows, wrong shape.
    for inputs in [
        vec![],
        vec![("h".to_string(), random(6, &[2], "h"))],
        vec![("h".to_string(), random(7, &[3], "h"))],
    ] {
        let r = b.execute(&good, &g, &inputs, &w);
        assert!(matches!(&r, Err(RuntimeError::Binding { name, .. }) if name == "h"), "{r:?}");
    }
    let inputs = vec![("h".to_string(), h)];
    // Unknown buffer; a temp read before it is written; shapes that do not match.
    let bad = [
        copy(hb, BufferId::new(9)),
        copy(tb, ob),
        trav(Schedule::Rows(RowSpace::Nodes), vec![load(e, hb, RowIndex::This, &[3])]),
        trav(Schedule::Rows(RowSpace::Edges), vec![load(e, hb, RowIndex::This, &[2])]),
        trav(
            Schedule::EdgeParallel,
            vec![
                load(e, hb, RowIndex::Node(Endpoint::Src), &[2]),
                stmt(e, StmtOp::Softmax { x: r(0) }, &[2]),
            ],
        ),
    ];
    for k in bad {
        let p = plan_of(&Module::default(), bufs.clone(), vec![k], &[("out", ob)]);
        let r = b.execute(&p, &g, &inputs, &w);
        assert!(matches!(r, Err(RuntimeError::Internal(_))), "{r:?}");
    }
    // An output no kernel writes.
    let p = plan_of(&Module::default(), bufs.clone(), vec![], &[("out", ob)]);
    assert!(matches!(b.execute(&p, &g, &inputs, &w), Err(RuntimeError::Internal(_))));
    // Weights made for another graph (2 relations instead of 3).
    let mut m = Module::default();
    m.weights.push(Weight {
        name: "W".into(),
        kind: WeightKind::PerRelation,
        shape: Shape(vec![2]),
        init: Init::Glorot,
    });
    let mut bufs2 = Arena::new();
    let wb =
        bufs2.push(buffer("W", RowSpace::Relations, &[2], BufferKind::Weight(WeightId::new(0))));
    let ob2 =
        bufs2.push(buffer("out", RowSpace::Relations, &[2], BufferKind::Output("out".into())));
    let p = plan_of(
        &m,
        bufs2,
        vec![trav(
            Schedule::Rows(RowSpace::Relations),
            vec![load(e, wb, RowIndex::This, &[2]), store(e, ob2, 0, StoreMode::Write)],
        )],
        &[("out", ob2)],
    );
    let r = b.execute(&p, &g, &[], &WeightStore::init(&m, 2, 3, 1));
    assert!(matches!(r, Err(RuntimeError::Weights(_))), "{r:?}");
    assert_eq!(ok(b.execute(&p, &g, &[], &WeightStore::init(&m, 3, 3, 1))).outputs[0].1.rows, 3);
}
