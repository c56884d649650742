//! Kernel plans: print/parse round trips over plans using every variant, the exact printed form,
//! parser errors, and the verifier (one failing plan per invariant, exact violations).

use pigeon_ir::plan::{
    Buffer, BufferId, BufferKind, Epilogue, Gemm, Kernel, KernelId, Layout, Level, Plan, RegId,
    RowIndex, RowSpace, Schedule, Stmt, StmtOp, StoreMode, Traversal,
};
use pigeon_ir::shape::LinearForm;
use pigeon_ir::{
    parse_plan, print_plan, verify_plan, AggGroup, AggOp, BinaryOp, DType, Endpoint, EntityId,
    Init, Select, Shape, UnaryOp, Weight, WeightId, WeightKind,
};

fn b(i: usize) -> BufferId {
    BufferId::new(i)
}
fn r(i: usize) -> RegId {
    RegId::new(i)
}
fn s(d: &[usize]) -> Shape {
    Shape(d.to_vec())
}

fn weight(name: &str, kind: WeightKind, shape: &[usize]) -> Weight {
    Weight { name: name.into(), kind, shape: s(shape), init: Init::Glorot }
}

fn buffer(name: &str, rows: RowSpace, shape: &[usize], kind: BufferKind) -> Buffer {
    Buffer { name: name.into(), rows, shape: s(shape), dtype: DType::F32, kind, slot: None }
}

fn input(name: &str) -> BufferKind {
    BufferKind::Input(name.into())
}

fn output(name: &str) -> BufferKind {
    BufferKind::Output(name.into())
}

fn wk(i: usize) -> BufferKind {
    BufferKind::Weight(WeightId::new(i))
}

fn edge(op: StmtOp, shape: &[usize]) -> Stmt {
    Stmt { level: Level::Edge, op, shape: s(shape) }
}

fn node(op: StmtOp, shape: &[usize]) -> Stmt {
    Stmt { level: Level::Node, op, shape: s(shape) }
}

fn load(buf: usize, index: RowIndex) -> StmtOp {
    StmtOp::Load { buf: b(buf), index }
}

fn store(buf: usize, x: usize, mode: StoreMode) -> StmtOp {
    StmtOp::Store { buf: b(buf), x: r(x), mode }
}

fn traversal(schedule: Schedule, body: Vec<Stmt>) -> Kernel {
    Kernel::Traversal(Traversal { schedule, body })
}

fn plain(k: usize, n: usize) -> LinearForm {
    LinearForm::Plain { k, n }
}

/// `c[rows] = a[gather] @ b[segment]` without epilogue.
fn gemm(rows: RowSpace, segment: Select, a: usize, gather: RowIndex, bb: usize, c: usize) -> Gemm {
    Gemm {
        rows,
        segment,
        a: b(a),
        gather,
        b: b(bb),
        form: plain(4, 4),
        epilogue: Vec::new(),
        c: b(c),
        store: StoreMode::Write,
    }
}

/// R-GCN with a root weight: `out = h @ root + sum_e norm_e * (h[src] @ W[rel])`.
fn rgcn() -> Plan {
    let mut p = Plan { name: "rgcn".into(), params: vec![("dim".into(), 4)], ..Plan::default() };
    p.weights.push(weight("W", WeightKind::PerRelation, &[4, 4]));
    p.weights.push(weight("root", WeightKind::Shared, &[4, 4]));
    p.buffers.push(buffer("h", RowSpace::Nodes, &[4], input("h")));
    p.buffers.push(buffer("W", RowSpace::Relations, &[4, 4], wk(0)));
    p.buffers.push(buffer("root", RowSpace::One, &[4, 4], wk(1)));
    p.buffers.push(buffer("norm", RowSpace::Edges, &[], input("norm")));
    p.buffers.push(buffer("out", RowSpace::Nodes, &[4], output("out")));
    p.layouts.push(Layout::EdgesByRelation);
    let root = gemm(RowSpace::Nodes, Select::Same, 0, RowIndex::This, 2, 4);
    p.kernels.push(Kernel::Gemm(root));
    let mut msg = gemm(RowSpace::Edges, Select::Relation, 0, RowIndex::Node(Endpoint::Src), 1, 4);
    msg.epilogue.push(Epilogue::Scale { buf: b(3), index: RowIndex::This });
    msg.store = StoreMode::AddIntoDst;
    p.kernels.push(Kernel::Gemm(msg));
    p.outputs.push(("out".into(), b(4)));
    p
}

/// A one-head R-GAT layer: a gemm for the messages and a fused node-parallel attention.
fn rgat() -> Plan {
    let mut p = Plan { name: "rgat".into(), params: vec![("dim".into(), 4)], ..Plan::default() };
    p.weights.push(weight("W", WeightKind::PerRelation, &[4, 4]));
    p.weights.push(weight("a", WeightKind::PerRelation, &[4]));
    p.buffers.push(buffer("h", RowSpace::Nodes, &[4], input("h")));
    p.buffers.push(buffer("W", RowSpace::Relations, &[4, 4], wk(0)));
    p.buffers.push(buffer("a", RowSpace::Relations, &[4], wk(1)));
    let mut z = buffer("z", RowSpace::Edges, &[4], BufferKind::Temp);
    z.slot = Some(0);
    p.buffers.push(z);
    p.buffers.push(buffer("out", RowSpace::Nodes, &[4], output("out")));
    p.layouts = vec![Layout::EdgesByRelation, Layout::InCsr];
    let msg = gemm(RowSpace::Edges, Select::Relation, 0, RowIndex::Node(Endpoint::Src), 1, 3);
    p.kernels.push(Kernel::Gemm(msg));
    let body = vec![
        edge(load(3, RowIndex::This), &[4]),
        edge(load(2, RowIndex::Select(Select::Relation)), &[4]),
        edge(StmtOp::Dot { a: r(0), b: r(1) }, &[]),
        edge(StmtOp::Unary { op: UnaryOp::LeakyRelu(0.2), x: r(2) }, &[]),
        edge(StmtOp::Softmax { x: r(3) }, &[]),
        edge(StmtOp::Binary { op: BinaryOp::Mul, a: r(4), b: r(0) }, &[4]),
        node(StmtOp::Aggregate { op: AggOp::Sum, group: AggGroup::All, x: r(5) }, &[4]),
        node(StmtOp::Unary { op: UnaryOp::Relu, x: r(6) }, &[4]),
        node(store(4, 7, StoreMode::Write), &[]),
    ];
    p.kernels.push(traversal(Schedule::NodeParallel, body));
    p.outputs.push(("out".into(), b(4)));
    p
}

/// Every variant of every plan enum at least once (it need not verify).
fn everything() -> Plan {
    let mut p = rgat();
    p.name = "every thing".into();
    p.params.push(("neg".into(), -3));
    p.weights.push(weight("T", WeightKind::PerNodeType, &[2, 4, 4]));
    p.weights[WeightId::new(1)].init = Init::Zeros;
    p.weights[WeightId::new(2)].init = Init::Ones;
    let spaces = [
        RowSpace::Nodes,
        RowSpace::Edges,
        RowSpace::Compact(Endpoint::Src),
        RowSpace::Compact(Endpoint::Dst),
        RowSpace::Relations,
        RowSpace::NodeTypes,
        RowSpace::One,
    ];
    for (i, rows) in spaces.iter().enumerate() {
        let mut t = buffer(&format!("t{i}"), *rows, &[2, 4], BufferKind::Temp);
        t.dtype = if i % 2 == 0 { DType::F64 } else { DType::F32 };
        t.slot = Some(i as u32 % 3);
        p.buffers.push(t); // b5..b11
    }
    p.buffers.push(buffer("T", RowSpace::NodeTypes, &[2, 4, 4], wk(2))); // b12
    p.layouts = vec![
        Layout::NodesByType,
        Layout::EdgesByRelation,
        Layout::InCsr,
        Layout::Compact(Endpoint::Src),
        Layout::Compact(Endpoint::Dst),
    ];
    let mut g = gemm(RowSpace::Edges, Select::SrcType, 6, RowIndex::Node(Endpoint::Dst), 12, 6);
    g.form = LinearForm::Batched { batch: 2, k: 4, n: 4 };
    g.epilogue = vec![
        Epilogue::Scale { buf: b(7), index: RowIndex::EdgeToCompact(Endpoint::Src) },
        Epilogue::Add { buf: b(8), index: RowIndex::EdgeToCompact(Endpoint::Dst) },
        Epilogue::Unary(UnaryOp::Elu(1.5)),
        Epilogue::Unary(UnaryOp::LeakyRelu(-0.0)),
    ];
    g.store = StoreMode::AddIntoDst;
    p.kernels.push(Kernel::Gemm(g));
    let mut g = gemm(RowSpace::Nodes, Select::NodeType, 5, RowIndex::Select(Select::Same), 12, 5);
    g.form = LinearForm::Broadcast { batch: 2, k: 4, n: 4 };
    g.epilogue = vec![Epilogue::Add { buf: b(11), index: RowIndex::Select(Select::DstType) }];
    p.kernels.push(Kernel::Gemm(g));
    p.kernels.push(traversal(Schedule::EdgeParallel, edge_ops()));
    p.kernels.push(traversal(Schedule::NodeParallel, node_ops()));
    for rows in spaces {
        let body = vec![edge(load(5, RowIndex::This), &[2, 4])];
        p.kernels.push(traversal(Schedule::Rows(rows), body));
    }
    p.kernels.push(traversal(Schedule::EdgeParallel, Vec::new()));
    p.outputs.push(("second \"out\"".into(), b(9)));
    p
}

fn edge_ops() -> Vec<Stmt> {
    let unary = [
        UnaryOp::Neg,
        UnaryOp::Relu,
        UnaryOp::LeakyRelu(0.01),
        UnaryOp::Elu(1.0),
        UnaryOp::Gelu,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
    ];
    let mut body = vec![
        edge(load(6, RowIndex::Node(Endpoint::Src)), &[2, 4]),
        edge(load(12, RowIndex::Select(Select::SrcType)), &[2, 4, 4]),
        edge(StmtOp::Const(0.1 + 0.2), &[]),
        edge(StmtOp::Const(f64::NEG_INFINITY), &[]),
        edge(StmtOp::Const(-1e-310), &[]),
    ];
    for op in unary {
        body.push(edge(StmtOp::Unary { op, x: r(0) }, &[2, 4]));
    }
    for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max] {
        body.push(edge(StmtOp::Binary { op, a: r(0), b: r(2) }, &[2, 4]));
    }
    body.push(edge(StmtOp::Dot { a: r(0), b: r(5) }, &[2]));
    body.push(edge(StmtOp::View { x: r(0), shape: s(&[8]) }, &[8]));
    body.push(edge(StmtOp::Concat { xs: vec![r(0), r(6), r(7)] }, &[2, 12]));
    body.push(edge(StmtOp::Concat { xs: Vec::new() }, &[]));
    let mv = StmtOp::MatVec {
        x: r(0),
        w: b(12),
        select: Select::DstType,
        form: LinearForm::Batched { batch: 2, k: 4, n: 4 },
    };
    body.push(edge(mv, &[2, 4]));
    body.push(edge(store(6, 24, StoreMode::AddIntoDst), &[]));
    body.push(edge(store(6, 24, StoreMode::Write), &[]));
    body
}

fn node_ops() -> Vec<Stmt> {
    vec![
        edge(load(7, RowIndex::EdgeToCompact(Endpoint::Src)), &[2, 4]),
        edge(load(8, RowIndex::EdgeToCompact(Endpoint::Dst)), &[2, 4]),
        edge(load(3, RowIndex::Select(Select::NodeType)), &[4]),
        edge(StmtOp::Softmax { x: r(0) }, &[2, 4]),
        node(StmtOp::Aggregate { op: AggOp::Sum, group: AggGroup::All, x: r(3) }, &[2, 4]),
        node(StmtOp::Aggregate { op: AggOp::Mean, group: AggGroup::PerRelation, x: r(3) }, &[2, 4]),
        node(StmtOp::Aggregate { op: AggOp::Max, group: AggGroup::All, x: r(3) }, &[2, 4]),
        node(StmtOp::MatVec { x: r(4), w: b(1), select: Select::Same, form: plain(4, 4) }, &[4]),
        node(store(5, 6, StoreMode::Write), &[2, 4]),
    ]
}

/// print -> parse gives an equal plan, parse -> print the identical text, Display = print.
fn round_trip(plan: &Plan) {
    let text = print_plan(plan);
    let parsed = match parse_plan(&text) {
        Ok(p) => p,
        Err(e) => panic!("printed text does not parse: {e}\n{text}"),
    };
    assert_eq!(&parsed, plan, "text:\n{text}");
    assert_eq!(print_plan(&parsed), text);
    assert_eq!(plan.to_string(), text, "Display and print_plan differ");
}

#[test]
fn plans_round_trip() {
    round_trip(&rgcn());
    round_trip(&rgat());
    round_trip(&everything());
    round_trip(&Plan::default());
}

/// Constants and function parameters read back bit for bit (checked on the bits, since NaN and
/// -0.0 compare misleadingly).
#[test]
fn floats_round_trip_bit_for_bit() {
    for c in [0.1 + 0.2, -0.0, 1e-310, f64::MAX, f64::INFINITY, f64::NAN, 1.0 / 3.0] {
        let mut p = Plan::default();
        let body = vec![
            edge(StmtOp::Const(c), &[]),
            edge(StmtOp::Unary { op: UnaryOp::Elu(c), x: r(0) }, &[]),
        ];
        p.kernels.push(traversal(Schedule::EdgeParallel, body));
        let parsed = parse_plan(&print_plan(&p)).unwrap();
        let Some(Kernel::Traversal(t)) = parsed.kernels.values().next() else {
            panic!("expected a traversal")
        };
        let bits: Vec<u64> = t
            .body
            .iter()
            .map(|st| match st.op {
                StmtOp::Const(x) | StmtOp::Unary { op: UnaryOp::Elu(x), .. } => x.to_bits(),
                _ => 0,
            })
            .collect();
        assert_eq!(bits, vec![c.to_bits(), c.to_bits()], "{c:?}");
    }
}

#[test]
fn empty_plan_prints_its_header_only() {
    let p = Plan { name: "e".into(), ..Plan::default() };
    assert_eq!(print_plan(&p), "plan e()\n");
}

/// The example in `plan_text.rs`'s module doc is exactly what the printer writes for `rgat()`,
/// and that plan verifies.
#[test]
fn module_doc_example_is_exact() {
    let src = include_str!("../src/plan_text.rs");
    let start = src.find("//! ```text\n").expect("doc example") + "//! ```text\n".len();
    let end = start + src[start..].find("//! ```\n").expect("end of doc example");
    let doc: String = src[start..end]
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("//! ").unwrap_or(l.trim_start_matches("//!"))))
        .collect();
    assert_eq!(print_plan(&rgat()), doc);
    assert_eq!(parse_plan(&doc).unwrap(), rgat());
    assert_eq!(verify_plan(&rgat()), Ok(()));
}

#[test]
fn rgcn_prints_as_written_and_verifies() {
    let text = r#"plan rgcn(dim = 4)

weight w0 "W": relation [4, 4] glorot
weight w1 "root": shared [4, 4] glorot

buffer b0 "h": nodes [4] f32 input "h"
buffer b1 "W": relations [4, 4] f32 weight w0
buffer b2 "root": one [4, 4] f32 weight w1
buffer b3 "norm": edges [] f32 input "norm"
buffer b4 "out": nodes [4] f32 output "out"

layouts edges_by_relation

k0 = gemm rows nodes segment same a b0 gather this b b2 plain(k=4, n=4) c b4 write
k1 = gemm rows edges segment relation a b0 gather src b b1 plain(k=4, n=4) epilogue [scale b3 this] c b4 add_into_dst

output "out" = b4
"#;
    assert_eq!(print_plan(&rgcn()), text);
    assert_eq!(verify_plan(&rgcn()), Ok(()));
}

/// Free spacing, comments, declarations out of order and several `layouts` lines.
#[test]
fn parser_accepts_free_form_text() {
    let text = r#"
// R-GCN
plan "rgcn" ( dim=+4 )
output "out" = b4
weight w0 "W" : relation [4,4] glorot
buffer b0 "h": nodes [4] f32 input "h"   // features
buffer b1 "W": relations[4,4]f32 weight w0
weight w1 "root": shared [4, 4] glorot
buffer b2 "root": one [4, 4] f32 weight w1
buffer b3 "norm": edges [ ] f32 input "norm"
layouts
buffer b4 "out": nodes [4] f32 output "out"
	k0 = gemm rows nodes segment same a b0 gather this b b2 plain( k = 4 , n = 4 ) c b4 write
k1 = gemm rows edges segment relation a b0 gather src b b1 plain(k=4,n=4) epilogue[scale b3 this]c b4 add_into_dst
layouts edges_by_relation
"#;
    assert_eq!(parse_plan(text).unwrap(), rgcn());
}

/// Parses `text` and checks the error it gives, as `line:col: message`.
fn check(text: &str, expected: &str) {
    match parse_plan(text) {
        Ok(p) => panic!("expected error `{expected}`, but it parsed:\n{}", print_plan(&p)),
        Err(e) => assert_eq!(e.to_string(), expected, "for text:\n{text}"),
    }
}

#[test]
fn parse_errors() {
    check("", "1:1: expected `plan NAME(...)`, found end of input");
    check("model m()", "1:1: expected `plan NAME(...)`, found `model`");
    check("plan p()\nplan q()", "2:1: a second `plan` header: one text holds one plan");
    check(
        "plan p()\nbuffer b1 \"x\": nodes [4] f32 temp",
        "2:8: expected `b0` (buffers are numbered in order), found `b1`",
    );
    check(
        "plan p()\nbuffer b0 \"x\": rows [4] f32 temp",
        "2:16: expected one of `nodes`, `edges`, `compact.src`, `compact.dst`, `relations`, \
         `ntypes`, `one`, found `rows`",
    );
    check(
        "plan p()\nbuffer b0 \"x\": one [4] f32 temp slot",
        "2:37: expected a slot number, found end of line",
    );
    check("plan p()\nlayouts in_csr,", "2:16: expected one of `nodes_by_type`, `edges_by_relation`, `in_csr`, `compact.src`, `compact.dst`, found end of line");
    check("plan p()\nk1 = gemm", "2:1: expected `k0` (kernels are numbered in order), found `k1`");
    check(
        "plan p()\nk0 = conv",
        "2:6: expected one of `gemm`, `weight_grad`, `traversal`, found `conv`",
    );
    check(
        "plan p()\nk0 = gemm rows edges segment relation a b0 gather src b b1 plain(k=4) c b2 write",
        "2:69: expected `,`, found `)`",
    );
    check(
        "plan p()\nk0 = gemm rows edges segment relation a b0 gather src b b1 plain(k=4, n=4) epilogue [foo] c b2 write",
        "2:86: expected an epilogue (`scale BUF INDEX`, `add BUF INDEX` or a function), found `foo`",
    );
    check(
        "plan p()\nk0 = gemm rows edges segment relation a b0 gather src b b1 plain(k=4, n=4) c b2",
        "2:80: expected one of `write`, `add_into_dst`, `add_into_src`, `add_into_compact.src`, `add_into_compact.dst`, found end of line",
    );
    check(
        "plan p()\nk0 = traversal edge_parallel {\n    r0 = edge const 1 : []",
        "4:1: expected `}` closing the body of k0, found end of input",
    );
    check(
        "plan p()\nk0 = traversal edge_parallel {\n    r1 = edge const 1 : []",
        "3:5: expected `r0` (statements are numbered in order), found `r1`",
    );
    check(
        "plan p()\nk0 = traversal edge_parallel {\n    r0 = load b0 this : [4]",
        "3:10: expected one of `edge`, `node`, found `load`",
    );
    check("plan p()\nk0 = traversal edge_parallel {\n    r0 = edge fetch b0 : [4]", "3:15: expected an operation (`load`, `store`, `matvec`, `relu`, `add`, ...), found `fetch`");
    check(
        "plan p()\nk0 = traversal edge_parallel {\n    r0 = edge store b0 r0 : []",
        "3:27: expected one of `write`, `add_into_dst`, `add_into_src`, `add_into_compact.src`, `add_into_compact.dst`, found `:`",
    );
    check("plan p()\nk0 = traversal edge_parallel\n}", "2:29: expected `{`, found end of line");
    check("plan p()\nk0 = traversal edge_parallel {\n} x", "3:3: expected end of line, found `x`");
    check("plan p()\noutput \"o\" = b0 $", "2:17: unexpected character '$'");
    check("plan p()\nfoo", "2:1: expected a declaration (`weight`, `buffer`, `layouts`, `kN = ...` or `output`), found `foo`");
}

/// Verifies `p` and checks the violations it reports, each as `location: message (invariant n)`.
fn verifies_to(p: &Plan, expected: &[&str]) {
    let got: Vec<String> = match verify_plan(p) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    };
    assert_eq!(got, expected, "plan:\n{p}");
}

fn gemm_mut(p: &mut Plan, k: usize) -> &mut Gemm {
    match &mut p.kernels[KernelId::new(k)] {
        Kernel::Gemm(g) => g,
        _ => panic!("k{k} is not a gemm"),
    }
}

fn body_mut(p: &mut Plan, k: usize) -> &mut Vec<Stmt> {
    match &mut p.kernels[KernelId::new(k)] {
        Kernel::Traversal(t) => &mut t.body,
        _ => panic!("k{k} is not a traversal"),
    }
}

fn temp(name: &str, rows: RowSpace, shape: &[usize], slot: Option<u32>) -> Buffer {
    Buffer { slot, ..buffer(name, rows, shape, BufferKind::Temp) }
}

#[test]
fn hand_built_plans_verify() {
    verifies_to(&rgcn(), &[]);
    verifies_to(&rgat(), &[]);
    // A temp may reuse the slot of one whose lifetime has ended (b3: k0..k1, b5: k2).
    let mut p = rgat();
    p.buffers.push(temp("t", RowSpace::Edges, &[4], Some(0)));
    let body = vec![
        edge(load(0, RowIndex::Node(Endpoint::Src)), &[4]),
        edge(store(5, 0, StoreMode::Write), &[]),
    ];
    p.kernels.push(traversal(Schedule::Rows(RowSpace::Edges), body));
    verifies_to(&p, &[]);
}

#[test]
fn inv1_header_and_weights() {
    let mut p = rgcn();
    p.params.push(("dim".into(), 5));
    p.weights.push(weight("W", WeightKind::Shared, &[0]));
    verifies_to(
        &p,
        &[
            "model: parameter \"dim\" is declared twice (invariant 1)",
            "w2: weight name \"W\" is declared twice (invariant 1)",
            "w2: shape [0] has an extent of 0 (invariant 1)",
        ],
    );
}

#[test]
fn inv2_buffers_exist() {
    let mut p = rgcn();
    gemm_mut(&mut p, 1).a = b(9);
    p.outputs[0].1 = b(7);
    verifies_to(
        &p,
        &[
            "k1: b9 is not a buffer (invariant 2)",
            "output \"out\": b7 is not a buffer (invariant 2)",
            "b4: an output buffer that no output lists (invariant 5)",
        ],
    );
    let mut p = rgat();
    body_mut(&mut p, 1)[0] = edge(load(9, RowIndex::This), &[4]);
    verifies_to(&p, &["k1.r0: b9 is not a buffer (invariant 2)"]);
}

#[test]
fn inv3_buffer_declarations() {
    let mut p = rgcn();
    p.buffers.push(buffer("x", RowSpace::Nodes, &[4, 4], wk(1)));
    p.buffers.push(buffer("y", RowSpace::One, &[4, 4], wk(7)));
    p.buffers.push(buffer("h2", RowSpace::Relations, &[0], input("h")));
    verifies_to(
        &p,
        &[
            "b5: nodes [4, 4] does not match weight w1 (one [4, 4]) (invariant 3)",
            "b6: weight w7 is not declared (invariant 3)",
            "b7: input \"h\" has relations rows, not nodes, edges or compact rows (invariant 3)",
            "b7: input name \"h\" is used twice (invariant 3)",
            "b7: shape [0] has an extent of 0 (invariant 3)",
        ],
    );
}

#[test]
fn inv4_reads_follow_writes() {
    let mut p = rgcn();
    p.buffers.push(temp("t", RowSpace::Nodes, &[4], None)); // b5
    gemm_mut(&mut p, 0).a = b(5);
    gemm_mut(&mut p, 1).c = b(0);
    // b5 is written, but only after k0 read it.
    let body = vec![edge(load(4, RowIndex::This), &[4]), edge(store(5, 0, StoreMode::Write), &[])];
    p.kernels.push(traversal(Schedule::Rows(RowSpace::Nodes), body));
    verifies_to(
        &p,
        &[
            "k0: reads b5, which no earlier kernel writes (invariant 4)",
            "k1: writes b0, which is an input (invariant 4)",
        ],
    );
}

#[test]
fn inv5_outputs() {
    let mut p = rgcn();
    p.outputs.push(("out".into(), b(4)));
    p.outputs.push(("norm".into(), b(3)));
    p.buffers.push(buffer("y", RowSpace::Nodes, &[4], output("y")));
    verifies_to(
        &p,
        &[
            "output \"out\": output name is used twice (invariant 5)",
            "output \"norm\": b3 is not declared `output \"norm\"` (invariant 5)",
            "output \"norm\": b3 is written by no kernel (invariant 5)",
            "b5: an output buffer that no output lists (invariant 5)",
        ],
    );
}

#[test]
fn inv6_gemm_operands() {
    let mut p = rgcn();
    let g = gemm_mut(&mut p, 1);
    g.gather = RowIndex::This;
    g.segment = Select::NodeType;
    g.form = plain(4, 8);
    verifies_to(
        &p,
        &[
            "k1: a b0: edges rows cannot read nodes rows by this (invariant 6)",
            "k1: b b1: edges rows cannot select relations rows by ntype (invariant 6)",
            "k1: form plain(k=4, n=8) differs from the operands' plain(k=4, n=4) (invariant 6)",
        ],
    );
    let mut p = rgcn();
    gemm_mut(&mut p, 0).b = b(3);
    verifies_to(
        &p,
        &[
            "k0: b b3: nodes rows cannot select edges rows by same (invariant 6)",
            "k0: cannot multiply a [4] row by a [] slice (invariant 6)",
        ],
    );
    let mut p = rgcn();
    p.buffers.push(temp("wide", RowSpace::Nodes, &[8], None));
    gemm_mut(&mut p, 0).c = b(5);
    verifies_to(&p, &["k0: c b5 has shape [8], the product [4] (invariant 6)"]);
}

#[test]
fn inv7_gemm_output_and_epilogue() {
    let mut p = rgcn();
    p.buffers.push(temp("e", RowSpace::Edges, &[4], None));
    gemm_mut(&mut p, 0).c = b(5);
    let g = gemm_mut(&mut p, 1);
    g.epilogue.push(Epilogue::Scale { buf: b(0), index: RowIndex::Node(Endpoint::Src) });
    g.epilogue.push(Epilogue::Unary(UnaryOp::Relu));
    g.epilogue.push(Epilogue::Add { buf: b(2), index: RowIndex::This });
    verifies_to(
        &p,
        &[
            "k0: c b5 has edges rows, the iteration nodes (invariant 7)",
            "k1: scale b0: rows of shape [4] are not scalars (invariant 7)",
            "k1: add b2: shape [4, 4] does not broadcast to [4] (invariant 7)",
        ],
    );
    let mut p = rgcn();
    let g = gemm_mut(&mut p, 1);
    (g.rows, g.segment, g.gather, g.b) = (RowSpace::Nodes, Select::Same, RowIndex::This, b(2));
    verifies_to(
        &p,
        &[
            "k1: add_into_dst adds edge or compact.dst rows into nodes rows, not nodes rows into nodes rows \
             (invariant 7)",
            "k1: scale b3: nodes rows cannot read edges rows by this (invariant 7)",
        ],
    );
}

#[test]
fn inv8_registers_defined_before_use() {
    let mut p = rgat();
    let body = body_mut(&mut p, 1);
    body[2] = edge(StmtOp::Dot { a: r(0), b: r(12) }, &[]);
    body[3] = edge(StmtOp::Unary { op: UnaryOp::Relu, x: r(3) }, &[]);
    body[5] = edge(StmtOp::Binary { op: BinaryOp::Mul, a: r(4), b: r(6) }, &[4]);
    body.push(node(StmtOp::Unary { op: UnaryOp::Relu, x: r(8) }, &[]));
    verifies_to(
        &p,
        &[
            "k1.r2: operand r12 refers to no statement (invariant 8)",
            "k1.r3: operand r3 refers to itself (invariant 8)",
            "k1.r5: operand r6 refers to a later statement (invariant 8)",
            "k1.r9: operand r8 refers to a store, which defines no value (invariant 8)",
        ],
    );
}

#[test]
fn inv9_statement_shapes() {
    let mut p = rgat();
    body_mut(&mut p, 1)[7].shape = s(&[2]);
    verifies_to(
        &p,
        &[
            "k1.r7: declared shape [2] differs from the inferred [4] (invariant 9)",
            "k1.r8: stores a [2] register into b4 of shape [4] (invariant 9)",
        ],
    );
    let mut p = rgat();
    let mv = |x: usize, form: LinearForm| StmtOp::MatVec {
        x: r(x),
        w: b(1),
        select: Select::Relation,
        form,
    };
    let body = vec![
        edge(load(3, RowIndex::This), &[4]),
        edge(load(1, RowIndex::Select(Select::Relation)), &[4, 4]),
        edge(StmtOp::View { x: r(0), shape: s(&[2, 2]) }, &[2, 2]),
        edge(StmtOp::Binary { op: BinaryOp::Add, a: r(0), b: r(2) }, &[4]),
        edge(StmtOp::Dot { a: r(0), b: r(2) }, &[]),
        edge(StmtOp::View { x: r(0), shape: s(&[3]) }, &[3]),
        edge(StmtOp::Concat { xs: Vec::new() }, &[]),
        edge(StmtOp::Concat { xs: vec![r(0), r(2)] }, &[]),
        edge(mv(2, plain(4, 4)), &[4]),
        edge(mv(0, LinearForm::Batched { batch: 1, k: 4, n: 4 }), &[4]),
        edge(StmtOp::Const(1.0), &[1]),
        edge(store(3, 10, StoreMode::Write), &[]),
    ];
    p.kernels.push(traversal(Schedule::Rows(RowSpace::Edges), body));
    verifies_to(
        &p,
        &[
            "k2.r3: shapes [4] and [2, 2] do not broadcast (invariant 9)",
            "k2.r4: dot needs matching last axes, got [4] and [2, 2] (invariant 9)",
            "k2.r5: cannot view [4] as [3] (invariant 9)",
            "k2.r6: concat has no operand (invariant 9)",
            "k2.r7: operands do not concatenate along the last axis (invariant 9)",
            "k2.r8: cannot multiply a [2, 2] row by a [4, 4] slice (invariant 9)",
            "k2.r9: form batched(batch=1, k=4, n=4) differs from the operands' plain(k=4, n=4) \
             (invariant 9)",
            "k2.r10: declared shape [1] differs from the inferred [] (invariant 9)",
            "k2.r11: stores a [1] register into b3 of shape [4] (invariant 9)",
        ],
    );
}

#[test]
fn inv10_levels_and_schedules() {
    let mut p = rgat();
    let body = vec![
        edge(load(3, RowIndex::This), &[4]),
        edge(StmtOp::Softmax { x: r(0) }, &[4]),
        node(StmtOp::Aggregate { op: AggOp::Sum, group: AggGroup::All, x: r(0) }, &[4]),
    ];
    p.kernels.push(traversal(Schedule::EdgeParallel, body));
    let body = body_mut(&mut p, 1);
    body[4].level = Level::Node;
    body[6].level = Level::Edge;
    body[7] = node(StmtOp::Unary { op: UnaryOp::Relu, x: r(5) }, &[4]);
    verifies_to(
        &p,
        &[
            "k1.r4: softmax is an edge-level statement of edge registers (invariant 10)",
            "k1.r5: edge-level statement reads a node-level register (invariant 10)",
            "k1.r6: aggregate is a node-level statement of an edge register (invariant 10)",
            "k1.r7: node-level statement reads an edge-level register (invariant 10)",
            "k2.r1: softmax outside a node_parallel traversal (invariant 10)",
            "k2.r2: node-level statement outside a node_parallel traversal (invariant 10)",
            "k2.r2: aggregate outside a node_parallel traversal (lower it to a store \
             add_into_dst) (invariant 10)",
        ],
    );
}

#[test]
fn inv11_row_indexes() {
    let mut p = rgat();
    p.layouts.push(Layout::Compact(Endpoint::Src));
    let body = body_mut(&mut p, 1);
    body[0] = edge(load(3, RowIndex::Node(Endpoint::Src)), &[4]);
    body[1] = edge(load(2, RowIndex::Select(Select::NodeType)), &[4]);
    let mv = StmtOp::MatVec { x: r(7), w: b(1), select: Select::Relation, form: plain(4, 4) };
    body.push(node(mv, &[4]));
    let body = vec![
        edge(load(0, RowIndex::Node(Endpoint::Dst)), &[4]),
        edge(load(0, RowIndex::Node(Endpoint::Src)), &[4]),
    ];
    p.kernels.push(traversal(Schedule::Rows(RowSpace::Compact(Endpoint::Src)), body));
    verifies_to(
        &p,
        &[
            "k1.r0: load b3: edges rows cannot read edges rows by src (invariant 11)",
            "k1.r1: load b2: edges rows cannot read relations rows by ntype (invariant 11)",
            "k1.r9: matvec b1: nodes rows cannot select relations rows by relation (invariant 11)",
            "k2.r0: load b0: compact.src rows cannot read nodes rows by dst (invariant 11)",
        ],
    );
}

#[test]
fn inv12_stores() {
    let mut p = rgat();
    body_mut(&mut p, 1)[8] = node(store(4, 7, StoreMode::AddIntoDst), &[]);
    let body = vec![
        edge(load(3, RowIndex::This), &[4]),
        edge(store(4, 0, StoreMode::Write), &[]),
        edge(store(3, 0, StoreMode::AddIntoDst), &[]),
        edge(store(4, 0, StoreMode::AddIntoDst), &[]),
    ];
    p.kernels.push(traversal(Schedule::EdgeParallel, body));
    verifies_to(
        &p,
        &[
            "k1.r8: store b4: add_into_dst adds edge or compact.dst rows into nodes rows, not nodes rows into \
             nodes rows (invariant 12)",
            "k2.r1: store b4 writes edges rows into nodes rows (invariant 12)",
            "k2.r2: store b3: add_into_dst adds edge or compact.dst rows into nodes rows, not edges rows into \
             edges rows (invariant 12)",
        ],
    );
}

#[test]
fn inv13_layouts() {
    let mut p = rgat();
    p.layouts = vec![Layout::InCsr, Layout::InCsr];
    p.buffers.push(temp("c", RowSpace::Compact(Endpoint::Dst), &[4], None)); // b5
    p.buffers.push(temp("d", RowSpace::Compact(Endpoint::Src), &[4], None)); // b6
    let g = gemm(
        RowSpace::Compact(Endpoint::Src),
        Select::Relation,
        0,
        RowIndex::Node(Endpoint::Src),
        1,
        6,
    );
    p.kernels.push(Kernel::Gemm(g));
    let body = vec![edge(load(6, RowIndex::EdgeToCompact(Endpoint::Src)), &[4])];
    p.kernels.push(traversal(Schedule::EdgeParallel, body));
    verifies_to(
        &p,
        &[
            "b5: needs layout compact.dst, which is not listed (invariant 13)",
            "b6: needs layout compact.src, which is not listed (invariant 13)",
            "model: layout in_csr is listed twice (invariant 13)",
            "k0: needs layout edges_by_relation, which is not listed (invariant 13)",
            "k2: needs layout compact.src, which is not listed (invariant 13)",
            "k3: needs layout compact.src, which is not listed (invariant 13)",
        ],
    );
    let mut p = rgat();
    p.layouts.clear();
    verifies_to(
        &p,
        &[
            "k0: needs layout edges_by_relation, which is not listed (invariant 13)",
            "k1: needs layout in_csr, which is not listed (invariant 13)",
        ],
    );
}

#[test]
fn inv14_slots() {
    let mut p = rgat();
    p.buffers[b(0)].slot = Some(1);
    p.buffers.push(temp("t", RowSpace::Edges, &[4], Some(0))); // b5
                                                               // b3 (slot 0) is read until k2, which writes b5 (slot 0) too.
    let body = vec![edge(load(3, RowIndex::This), &[4]), edge(store(5, 0, StoreMode::Write), &[])];
    p.kernels.push(traversal(Schedule::Rows(RowSpace::Edges), body));
    verifies_to(
        &p,
        &[
            "b0: only temps carry a slot (invariant 14)",
            "b5: shares slot 0 with b3 (live k0..k2) while live k2..k2 (invariant 14)",
        ],
    );
}

/// Every truncation and every one-character deletion of a printed plan gives `Ok` or `Err`,
/// never a panic (and the unmangled text parses).
#[test]
fn parser_never_panics_on_mangled_text() {
    let text = print_plan(&everything());
    let chars: Vec<char> = text.chars().collect();
    let mut errors = 0;
    for i in 0..chars.len() {
        let truncated: String = chars[..i].iter().collect();
        let deleted: String = chars[..i].iter().chain(&chars[i + 1..]).collect();
        errors += usize::from(parse_plan(&truncated).is_err());
        errors += usize::from(parse_plan(&deleted).is_err());
    }
    assert!(errors > chars.len(), "most mangled texts should be rejected, {errors} were");
    assert!(parse_plan(&text).is_ok());
}
