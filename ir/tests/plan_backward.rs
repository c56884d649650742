//! Kernel plans of backward passes: the weight-gradient form of the GEMM template, derivative
//! statements and adds into source rows print and parse back, verify when well formed, and
//! each misuse is reported with its invariant.

use pigeon_ir::plan::{Kernel, KernelId, Plan, StmtOp, StoreMode};
use pigeon_ir::EntityId;
use pigeon_ir::{parse_plan, print_plan, verify_plan};

/// A hand-written backward plan using every backward element.
const BACKWARD: &str = r#"
plan grads(dim = 4)

weight w0 "W": relation [4, 2] glorot
weight w1 "b": shared [2] zeros

buffer b0 "h": nodes [4] f32 input "h"
buffer b1 "dy": edges [2] f32 input "dy"
buffer b2 "W": relations [4, 2] f32 weight w0
buffer b3 "Wt": relations [2, 4] f32 temp
buffer b4 "dh": nodes [4] f32 output "dh"
buffer b5 "dW": relations [4, 2] f32 output "dW"
buffer b6 "db": one [2] f32 output "db"
buffer b7 "z": edges [2] f32 input "z"
buffer b8 "dz": edges [2] f32 temp
buffer b9 "ds": nodes [1] f32 output "ds"
buffer b10 "dm": nodes [2] f32 input "dm"
buffer b11 "dx": edges [2] f32 output "dx"

layouts edges_by_relation, in_csr

k0 = traversal rows relations {
    r0 = edge load b2 this : [4, 2]
    r1 = edge transpose r0 : [2, 4]
    r2 = edge store b3 r1 write : []
}
k1 = traversal node_parallel {
    r0 = edge load b7 this : [2]
    r1 = edge load b1 this : [2]
    r2 = edge grad leaky_relu(0.2) r0, r1 : [2]
    r3 = edge group_size per_relation : []
    r4 = edge div r2, r3 : [2]
    r5 = edge store b8 r4 write : []
    r6 = edge view r4 as [2, 1] : [2, 1]
    r7 = edge sum_to r6 : [1, 1]
    r8 = edge view r7 as [1] : [1]
    r9 = edge narrow r4 from 1 len 1 : [1]
    r10 = edge add r8, r9 : [1]
    r11 = edge store b9 r10 add_into_src : []
    r12 = edge load b10 dst : [2]
    r13 = edge max_grad r0, r12 : [2]
    r14 = edge store b11 r13 write : []
}
k2 = gemm rows edges segment relation a b8 gather this b b3 plain(k=2, n=4) c b4 add_into_src
k3 = weight_grad rows edges segment relation a b0 gather src b b8 gather this plain(k=4, n=2) c b5
k4 = weight_grad rows edges segment same a one b b8 gather this plain(k=1, n=2) c b6

output "dh" = b4
output "dW" = b5
output "db" = b6
output "ds" = b9
output "dx" = b11
"#;

fn plan() -> Plan {
    parse_plan(BACKWARD).unwrap_or_else(|e| panic!("{e}"))
}

fn violations(p: &Plan) -> Vec<String> {
    match verify_plan(p) {
        Ok(()) => Vec::new(),
        Err(errs) => errs.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn a_backward_plan_parses_verifies_and_round_trips() {
    let p = plan();
    assert_eq!(violations(&p), Vec::<String>::new());
    let text = print_plan(&p);
    assert_eq!(parse_plan(&text).unwrap_or_else(|e| panic!("{e}\n{text}")), p);
    // The printed forms, as written above (spacing aside).
    for line in [
        "k2 = gemm rows edges segment relation a b8 gather this b b3 plain(k=2, n=4) c b4 add_into_src",
        "k3 = weight_grad rows edges segment relation a b0 gather src b b8 gather this plain(k=4, n=2) c b5",
        "k4 = weight_grad rows edges segment same a one b b8 gather this plain(k=1, n=2) c b6",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    let squeezed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for stmt in [
        "r1 = edge transpose r0 : [2, 4]",
        "r2 = edge grad leaky_relu(0.2) r0, r1 : [2]",
        "r3 = edge group_size per_relation : []",
        "r7 = edge sum_to r6 : [1, 1]",
        "r9 = edge narrow r4 from 1 len 1 : [1]",
        "r11 = edge store b9 r10 add_into_src : []",
        "r13 = edge max_grad r0, r12 : [2]",
    ] {
        assert!(squeezed.contains(stmt), "{stmt}\n{text}");
    }
}

fn body(p: &mut Plan, k: usize) -> &mut Vec<pigeon_ir::plan::Stmt> {
    match p.kernels.get_mut(KernelId::new(k)) {
        Some(Kernel::Traversal(t)) => &mut t.body,
        _ => panic!("k{k} is not a traversal"),
    }
}

fn expect(p: &Plan, want: &str) {
    let got = violations(p);
    assert!(got.iter().any(|v| v.contains(want)), "expected `{want}` among {got:?}");
}

#[test]
fn misuses_of_backward_elements_are_reported() {
    // A sum_to to a shape that does not broadcast back.
    let mut p = plan();
    body(&mut p, 1)[7].shape = pigeon_ir::Shape(vec![3]);
    expect(&p, "[3] does not broadcast to [2, 1] (invariant 9)");

    // A narrow beyond the axis.
    let mut p = plan();
    body(&mut p, 1)[9].op = StmtOp::Narrow { x: pigeon_ir::plan::RegId::new(4), start: 1, len: 2 };
    expect(&p, "cannot take 2 from 1 of a [2] row (invariant 9)");

    // group_size outside a node-parallel traversal.
    let mut p = plan();
    if let Some(Kernel::Traversal(t)) = p.kernels.get_mut(KernelId::new(1)) {
        t.schedule = pigeon_ir::plan::Schedule::Rows(pigeon_ir::plan::RowSpace::Edges);
    }
    expect(&p, "group_size outside a node_parallel traversal (invariant 10)");

    // add_into_src from node rows.
    let mut p = plan();
    body(&mut p, 0)[2].op = StmtOp::Store {
        buf: pigeon_ir::plan::BufferId::new(3),
        x: pigeon_ir::plan::RegId::new(1),
        mode: StoreMode::AddIntoSrc,
    };
    expect(
        &p,
        "add_into_src adds edge or compact.src rows into nodes rows, not relations rows into relations rows",
    );

    // A weight gradient whose B does not have the product's shape.
    let mut p = plan();
    if let Some(Kernel::WeightGrad(g)) = p.kernels.get_mut(KernelId::new(3)) {
        g.b.0 = pigeon_ir::plan::BufferId::new(0);
        g.b.1 = pigeon_ir::plan::RowIndex::Node(pigeon_ir::Endpoint::Src);
    }
    expect(&p, "do not match the product's [2] and plain(k=4, n=2) (invariant 15)");

    // A weight gradient into rows its iteration rows cannot select.
    let mut p = plan();
    if let Some(Kernel::WeightGrad(g)) = p.kernels.get_mut(KernelId::new(3)) {
        g.segment = pigeon_ir::Select::NodeType;
    }
    expect(&p, "edges rows cannot select relations rows by ntype (invariant 15)");
}

/// The compact form of a backward: the edge adjoint summed into compact source rows by a row
/// traversal over edges, then the input gradient as a GEMM over compact rows adding into each
/// row's node, and the weight gradient over compact rows.
const COMPACT_BACKWARD: &str = r#"
plan grads(dim = 4)

weight w0 "W": relation [4, 2] glorot
weight w1 "Wt": relation [2, 4] glorot

buffer b0 "h": nodes [4] f32 input "h"
buffer b1 "dy": edges [2] f32 input "dy"
buffer b2 "Wt": relations [2, 4] f32 weight w1
buffer b3 "g": compact.src [2] f32 temp
buffer b4 "dh": nodes [4] f32 output "dh"
buffer b5 "dW": relations [4, 2] f32 output "dW"

layouts compact.src

k0 = traversal rows edges {
    r0 = edge load b1 this : [2]
    r1 = edge store b3 r0 add_into_compact.src : []
}
k1 = gemm rows compact.src segment relation a b3 gather this b b2 plain(k=2, n=4) c b4 add_into_src
k2 = weight_grad rows compact.src segment relation a b0 gather src b b3 gather this plain(k=4, n=2) c b5

output "dh" = b4
output "dW" = b5
"#;

#[test]
fn compact_rows_add_into_their_nodes() {
    let p = parse_plan(COMPACT_BACKWARD).expect("parses");
    assert_eq!(verify_plan(&p), Ok(()), "{}", print_plan(&p));
    assert_eq!(parse_plan(&print_plan(&p)).as_ref(), Ok(&p));

    // add_into_dst from compact source rows: they have no destination.
    let mut p = parse_plan(COMPACT_BACKWARD).expect("parses");
    if let Some(Kernel::Gemm(g)) = p.kernels.get_mut(KernelId::new(1)) {
        g.store = StoreMode::AddIntoDst;
    }
    expect(
        &p,
        "k1: add_into_dst adds edge or compact.dst rows into nodes rows, not compact.src rows into \
         nodes rows (invariant 7)",
    );

    // A traversal over compact source rows adding into their nodes verifies too, and one
    // adding into compact rows from compact rows does not.
    let text = COMPACT_BACKWARD.replace(
        "\n\noutput \"dh\"",
        "\nk3 = traversal rows compact.src {\n    r0 = edge load b3 this : [2]\n    r1 = edge store \
         b6 r0 add_into_src : []\n}\n\noutput \"dh\"",
    );
    let text =
        text.replace("\n\nlayouts", "\nbuffer b6 \"s\": nodes [2] f32 output \"s\"\n\nlayouts");
    let text = text.replace("output \"dW\" = b5", "output \"dW\" = b5\noutput \"s\" = b6");
    let p = parse_plan(&text).expect("parses");
    assert_eq!(verify_plan(&p), Ok(()), "{}", print_plan(&p));
    let bad = text.replace("r0 add_into_src : []", "r0 add_into_compact.src : []");
    let p = parse_plan(&bad).expect("parses");
    expect(&p, "add_into_compact.src adds edge rows into compact.src rows, not compact.src rows");
}
