//! Per-operator tests of the reference interpreter on a tiny hand-built graph, each expected
//! number worked out by hand in the test.
//!
//! The graph (5 nodes, 2 node types, 2 relations, 6 edges):
//!
//! ```text
//! node types: 0 = {0, 1, 2}, 1 = {3, 4}        node 4 is isolated
//! e0: 0 -> 1 r0     e1: 3 -> 1 r1     e2: 0 -> 1 r0 (a multi-edge with e0)
//! e3: 2 -> 2 r0 (a self-loop)         e4: 1 -> 0 r1     e5: 3 -> 2 r1
//! incoming: node 0 {e4}, node 1 {e0, e2 | e1}, node 2 {e3 | e5}, nodes 3 and 4 none
//! ```
//!
//! Inputs: `h: node[2]` = h0 [1, 2], h1 [3, -1], h2 [0, 4], h3 [-2, 1], h4 [5, 5];
//! `s: edge` = [1, 2, 3, -1, 0.5, -2]; `x2: node[2, 2]` = node v holds [[v, 1], [2, -v]];
//! `sc: edge[2]` = edge e holds [e, -e].

// Expected values are written as the arithmetic done by hand, `3.0 * -1.0` included.
#![allow(clippy::neg_multiply)]

use pigeon_ir::builder::ModuleBuilder;
use pigeon_ir::{
    AggGroup, AggOp, BinaryOp, Domain, Endpoint, Index, Init, IrError, Module, Select, Shape,
    UnaryOp, ValueId, WeightKind,
};
use pigeon_runtime::graph::Relation;
use pigeon_runtime::interp::CompactTable;
use pigeon_runtime::{interpret, HeteroGraph, RuntimeError, Tensor, WeightStore};

fn graph() -> HeteroGraph {
    HeteroGraph {
        name: "tiny".into(),
        node_types: vec!["paper".into(), "author".into()],
        type_offsets: vec![0, 3, 5],
        relations: vec![
            Relation { name: "cites".into(), src_type: Some(0), dst_type: Some(0) },
            Relation { name: "mixed".into(), src_type: None, dst_type: Some(0) },
        ],
        src: vec![0, 3, 0, 2, 1, 3],
        dst: vec![1, 1, 1, 2, 0, 2],
        rel: vec![0, 1, 0, 0, 1, 1],
        base_relations: 2,
        ..HeteroGraph::default()
    }
}

fn tensor(rows: usize, shape: &[usize], data: Vec<f64>) -> Tensor {
    match Tensor::from_vec(rows, Shape(shape.to_vec()), data) {
        Ok(t) => t,
        Err(e) => panic!("bad test tensor: {e}"),
    }
}

fn inputs() -> Vec<(String, Tensor)> {
    let h = vec![1.0, 2.0, 3.0, -1.0, 0.0, 4.0, -2.0, 1.0, 5.0, 5.0];
    let s = vec![1.0, 2.0, 3.0, -1.0, 0.5, -2.0];
    let x2 = (0..5).flat_map(|v| [v as f64, 1.0, 2.0, -(v as f64)]).collect();
    let sc = (0..6).flat_map(|e| [e as f64, -(e as f64)]).collect();
    vec![
        ("h".into(), tensor(5, &[2], h)),
        ("s".into(), tensor(6, &[], s)),
        ("x2".into(), tensor(5, &[2, 2], x2)),
        ("sc".into(), tensor(6, &[2], sc)),
    ]
}

/// Builds a module with `build` (which returns the value to output as `out`), sets the named
/// weights to the given values (any number of slices), and interprets it on [`graph`].
fn run(
    build: impl FnOnce(&mut ModuleBuilder) -> Result<ValueId, IrError>,
    weights: &[(&str, &[f64])],
) -> Result<Tensor, RuntimeError> {
    let (module, store) = prepare(build, weights);
    let mut outs = interpret(&module, &graph(), &inputs(), &store)?;
    Ok(outs.remove(0).1)
}

fn prepare(
    build: impl FnOnce(&mut ModuleBuilder) -> Result<ValueId, IrError>,
    weights: &[(&str, &[f64])],
) -> (Module, WeightStore) {
    let mut b = ModuleBuilder::new("test");
    let out = build(&mut b).unwrap_or_else(|e| panic!("building the test module: {e}"));
    b.output("out", out);
    let module = b.finish().unwrap_or_else(|e| panic!("finishing the test module: {e}"));
    let mut store = WeightStore::init(&module, 2, 2, 0);
    for (name, data) in weights {
        let id = module.weight_by_name(name).unwrap_or_else(|| panic!("no weight {name}"));
        let t = store.get_mut(id).unwrap_or_else(|| panic!("no values for {name}"));
        let shape = t.shape.clone();
        *t = tensor(data.len() / shape.numel(), shape.dims(), data.to_vec());
    }
    (module, store)
}

/// Runs like [`run`] and compares the output, row after row, with `expect` (to 1e-12).
#[track_caller]
fn check(
    build: impl FnOnce(&mut ModuleBuilder) -> Result<ValueId, IrError>,
    weights: &[(&str, &[f64])],
    expect: &[f64],
) {
    let out = run(build, weights).unwrap_or_else(|e| panic!("interpreting: {e}"));
    assert_close(&out.data, expect);
}

#[track_caller]
fn assert_close(got: &[f64], expect: &[f64]) {
    assert_eq!(got.len(), expect.len(), "got {got:?}, expected {expect:?}");
    for (i, (g, e)) in got.iter().zip(expect).enumerate() {
        assert!(
            (g - e).abs() <= 1e-12 * e.abs().max(1.0),
            "element {i}: got {g}, expected {e}\n{got:?}"
        );
    }
}

fn h(b: &mut ModuleBuilder) -> Result<ValueId, IrError> {
    b.input("h", Domain::Node, &[2])
}
fn s(b: &mut ModuleBuilder) -> Result<ValueId, IrError> {
    b.input("s", Domain::Edge, &[])
}

// ---- gather ----------------------------------------------------------------------------------

#[test]
fn gather_src_and_dst() {
    // Sources 0, 3, 0, 2, 1, 3.
    let src = [1.0, 2.0, -2.0, 1.0, 1.0, 2.0, 0.0, 4.0, 3.0, -1.0, -2.0, 1.0];
    check(
        |b| {
            let x = h(b)?;
            b.gather(x, Index::Node(Endpoint::Src))
        },
        &[],
        &src,
    );
    // Destinations 1, 1, 1, 2, 0, 2.
    let dst = [3.0, -1.0, 3.0, -1.0, 3.0, -1.0, 0.0, 4.0, 1.0, 2.0, 0.0, 4.0];
    check(
        |b| {
            let x = h(b)?;
            b.gather(x, Index::Node(Endpoint::Dst))
        },
        &[],
        &dst,
    );
}

// ---- aggregation -----------------------------------------------------------------------------

fn agg(op: AggOp, group: AggGroup, expect: &[f64]) {
    check(
        |b| {
            let x = s(b)?;
            b.aggregate(op, group, x)
        },
        &[],
        expect,
    );
}

#[test]
fn aggregate_sum_all() {
    // node 0: s4; node 1: s0 + s1 + s2; node 2: s3 + s5; nodes 3, 4: no incoming edges.
    agg(AggOp::Sum, AggGroup::All, &[0.5, 1.0 + 2.0 + 3.0, -1.0 + -2.0, 0.0, 0.0]);
}

#[test]
fn aggregate_mean_all_is_zero_without_incoming_edges() {
    agg(AggOp::Mean, AggGroup::All, &[0.5, (1.0 + 2.0 + 3.0) / 3.0, (-1.0 + -2.0) / 2.0, 0.0, 0.0]);
}

#[test]
fn aggregate_max_all_with_negative_values() {
    // node 2 receives only negatives, -1 and -2: the max is -1, not 0.
    agg(AggOp::Max, AggGroup::All, &[0.5, 3.0, -1.0, 0.0, 0.0]);
}

#[test]
fn aggregate_mean_per_relation() {
    // node 1: mean over r0 {s0, s2} plus mean over r1 {s1}; node 2: r0 {s3} plus r1 {s5}.
    agg(AggOp::Mean, AggGroup::PerRelation, &[0.5, (1.0 + 3.0) / 2.0 + 2.0, -1.0 + -2.0, 0.0, 0.0]);
}

#[test]
fn aggregate_sum_and_max_per_relation() {
    agg(AggOp::Sum, AggGroup::PerRelation, &[0.5, (1.0 + 3.0) + 2.0, -1.0 + -2.0, 0.0, 0.0]);
    // node 1: max(s0, s2) + s1 = 3 + 2.
    agg(AggOp::Max, AggGroup::PerRelation, &[0.5, 3.0 + 2.0, -1.0 + -2.0, 0.0, 0.0]);
}

#[test]
fn aggregate_vector_rows() {
    // sum of sc = [e, -e] over incoming edges: node 1 gets e0 + e1 + e2 = 3, node 2 gets 3 + 5.
    let expect = [4.0, -4.0, 3.0, -3.0, 8.0, -8.0, 0.0, 0.0, 0.0, 0.0];
    check(
        |b| {
            let x = b.input("sc", Domain::Edge, &[2])?;
            b.aggregate(AggOp::Sum, AggGroup::All, x)
        },
        &[],
        &expect,
    );
}

// ---- edge softmax ----------------------------------------------------------------------------

#[test]
fn edge_softmax_per_destination_and_element() {
    let out = run(
        |b| {
            let x = b.input("sc", Domain::Edge, &[2])?;
            b.softmax(x)
        },
        &[],
    );
    let out = out.unwrap_or_else(|e| panic!("{e}"));
    // node 1's edges e0, e1, e2 have scores [0, 1, 2] (element 0) and [0, -1, -2] (element 1).
    let z0 = 0f64.exp() + 1f64.exp() + 2f64.exp();
    let z1 = 0f64.exp() + (-1f64).exp() + (-2f64).exp();
    // node 2's edges e3, e5 have [3, 5] and [-3, -5]; node 0's single edge e4 gets 1.
    let z2 = 3f64.exp() + 5f64.exp();
    let z3 = (-3f64).exp() + (-5f64).exp();
    let expect = [
        0f64.exp() / z0,
        0f64.exp() / z1,
        1f64.exp() / z0,
        (-1f64).exp() / z1,
        2f64.exp() / z0,
        (-2f64).exp() / z1,
        3f64.exp() / z2,
        (-3f64).exp() / z3,
        1.0,
        1.0,
        5f64.exp() / z2,
        (-5f64).exp() / z3,
    ];
    assert_close(&out.data, &expect);
    // Per destination and element, the weights sum to 1.
    for (edges, j) in [(&[0, 1, 2][..], 0), (&[0, 1, 2][..], 1), (&[3, 5][..], 0), (&[4][..], 1)] {
        let total: f64 = edges.iter().map(|&e| out.row(e)[j]).sum();
        assert!((total - 1.0).abs() < 1e-15, "{edges:?}/{j}: {total}");
    }
}

#[test]
fn edge_softmax_is_max_shifted() {
    // Scores 1000 + s: without the shift exp overflows to inf and the result is NaN.
    let out = run(
        |b| {
            let x = s(b)?;
            let c = b.constant(1000.0)?;
            let y = b.binary(BinaryOp::Add, x, c)?;
            b.softmax(y)
        },
        &[],
    );
    let out = out.unwrap_or_else(|e| panic!("{e}"));
    // node 2: e3 (-1) and e5 (-2): e^-1 / (e^-1 + e^-2).
    let z = (-1f64).exp() + (-2f64).exp();
    assert_close(&[out.row(3)[0], out.row(5)[0]], &[(-1f64).exp() / z, (-2f64).exp() / z]);
}

// ---- slice and linear: every Select ----------------------------------------------------------

/// `W` per relation, `[2, 1]`: r0 = [[1], [2]], r1 = [[-1], [1]].
const W_REL: &[f64] = &[1.0, 2.0, -1.0, 1.0];
/// `A` per node type, `[2, 1]`: type 0 = [[1], [1]], type 1 = [[2], [0]].
const A_TYPE: &[f64] = &[1.0, 1.0, 2.0, 0.0];

#[test]
fn linear_select_relation() {
    // e0: h0 . W_r0 = 1*1 + 2*2; e1: h3 . W_r1 = -2*-1 + 1*1; e3: h2 . W_r0 = 0*1 + 4*2;
    // e4: h1 . W_r1 = 3*-1 + -1*1; e5 like e1.
    let expect = [
        1.0 * 1.0 + 2.0 * 2.0,
        -2.0 * -1.0 + 1.0 * 1.0,
        5.0,
        0.0 * 1.0 + 4.0 * 2.0,
        3.0 * -1.0 + -1.0 * 1.0,
        3.0,
    ];
    check(
        |b| {
            let x = h(b)?;
            let w = b.weight("W", WeightKind::PerRelation, &[2, 1], Init::Glorot)?;
            let xs = b.gather(x, Index::Node(Endpoint::Src))?;
            b.linear(xs, w, Select::Relation)
        },
        &[("W", W_REL)],
        &expect,
    );
}

#[test]
fn linear_select_node_type() {
    // Nodes 0-2 use A0 (sum of features), nodes 3-4 use A1 (twice the first feature).
    let expect = [1.0 + 2.0, 3.0 - 1.0, 0.0 + 4.0, 2.0 * -2.0, 2.0 * 5.0];
    check(
        |b| {
            let x = h(b)?;
            let a = b.weight("A", WeightKind::PerNodeType, &[2, 1], Init::Glorot)?;
            b.linear(x, a, Select::NodeType)
        },
        &[("A", A_TYPE)],
        &expect,
    );
}

#[test]
fn linear_select_src_and_dst_type() {
    let build = |by: Select| {
        move |b: &mut ModuleBuilder| {
            let x = h(b)?;
            let a = b.weight("A", WeightKind::PerNodeType, &[2, 1], Init::Glorot)?;
            let xs = b.gather(x, Index::Node(Endpoint::Src))?;
            b.linear(xs, a, by)
        }
    };
    // By source type: sources 0, 3, 0, 2, 1, 3 have types 0, 1, 0, 0, 0, 1.
    let by_src = [1.0 + 2.0, 2.0 * -2.0, 1.0 + 2.0, 0.0 + 4.0, 3.0 - 1.0, 2.0 * -2.0];
    check(build(Select::SrcType), &[("A", A_TYPE)], &by_src);
    // By destination type: every destination is of type 0, so every edge sums its source's h.
    let by_dst = [1.0 + 2.0, -2.0 + 1.0, 1.0 + 2.0, 0.0 + 4.0, 3.0 - 1.0, -2.0 + 1.0];
    check(build(Select::DstType), &[("A", A_TYPE)], &by_dst);
}

#[test]
fn linear_select_same_shared_plain_form() {
    // [2] x [2, 2, 2] -> [2, 2] (Plain with n = 4): out[j] = h[0] * W[0, j] + h[1] * W[1, j].
    let w = [1.0, 0.0, 0.0, 1.0, 10.0, 20.0, 30.0, 40.0];
    let row = |a: f64, c: f64| [a + 10.0 * c, 20.0 * c, 30.0 * c, a + 40.0 * c];
    let expect: Vec<f64> = [(1.0, 2.0), (3.0, -1.0), (0.0, 4.0), (-2.0, 1.0), (5.0, 5.0)]
        .iter()
        .flat_map(|&(a, c)| row(a, c))
        .collect();
    check(
        |b| {
            let x = h(b)?;
            let w = b.weight("W", WeightKind::Shared, &[2, 2, 2], Init::Glorot)?;
            b.linear(x, w, Select::Same)
        },
        &[("W", &w)],
        &expect,
    );
}

#[test]
fn linear_batched_and_broadcast_forms() {
    let x2 = |b: &mut ModuleBuilder| b.input("x2", Domain::Node, &[2, 2]);
    // Batched: [2, 2] x [2, 2, 1]; head 0 uses [[1], [0]] (takes v), head 1 [[0], [1]] (takes -v).
    let batched: Vec<f64> = (0..5).flat_map(|v| [v as f64, -(v as f64)]).collect();
    check(
        |b| {
            let x = x2(b)?;
            let w = b.weight("W", WeightKind::Shared, &[2, 2, 1], Init::Glorot)?;
            b.linear(x, w, Select::Same)
        },
        &[("W", &[1.0, 0.0, 0.0, 1.0])],
        &batched,
    );
    // Broadcast: [2, 2] x [2, 1] = [[1], [3]]: head 0 gives v + 3 * 1, head 1 gives 2 + 3 * -v.
    let broadcast: Vec<f64> = (0..5).flat_map(|v| [v as f64 + 3.0, 2.0 - 3.0 * v as f64]).collect();
    check(
        |b| {
            let x = x2(b)?;
            let w = b.weight("W", WeightKind::Shared, &[2, 1], Init::Glorot)?;
            b.linear(x, w, Select::Same)
        },
        &[("W", &[1.0, 3.0])],
        &broadcast,
    );
}

#[test]
fn slice_by_relation_and_node_type() {
    // a[relation] as an edge value: relations 0, 1, 0, 0, 1, 1 of a = [10, 20].
    check(
        |b| {
            let a = b.weight("a", WeightKind::PerRelation, &[1], Init::Glorot)?;
            b.slice(a, Select::Relation, Domain::Edge)
        },
        &[("a", &[10.0, 20.0])],
        &[10.0, 20.0, 10.0, 10.0, 20.0, 20.0],
    );
    // k[ntype] as a node value: types 0, 0, 0, 1, 1 of k = [7, 8].
    check(
        |b| {
            let k = b.weight("k", WeightKind::PerNodeType, &[1], Init::Glorot)?;
            b.slice(k, Select::NodeType, Domain::Node)
        },
        &[("k", &[7.0, 8.0])],
        &[7.0, 7.0, 7.0, 8.0, 8.0],
    );
}

// ---- element-wise ----------------------------------------------------------------------------

#[test]
fn binary_ops_with_a_shared_scalar() {
    let with = |op: BinaryOp| {
        move |b: &mut ModuleBuilder| {
            let x = s(b)?;
            let c = b.constant(2.0)?;
            b.binary(op, x, c)
        }
    };
    let s = [1.0, 2.0, 3.0, -1.0, 0.5, -2.0];
    check(with(BinaryOp::Add), &[], &s.map(|v| v + 2.0));
    check(with(BinaryOp::Sub), &[], &s.map(|v| v - 2.0));
    check(with(BinaryOp::Mul), &[], &s.map(|v| v * 2.0));
    check(with(BinaryOp::Div), &[], &s.map(|v| v / 2.0));
    check(with(BinaryOp::Max), &[], &[2.0, 2.0, 3.0, 2.0, 2.0, 2.0]);
    // The constant on the left: 2 - s.
    check(
        |b| {
            let x = self::s(b)?;
            let c = b.constant(2.0)?;
            b.binary(BinaryOp::Sub, c, x)
        },
        &[],
        &s.map(|v| 2.0 - v),
    );
}

#[test]
fn binary_broadcasts_heads_against_vectors() {
    // alpha: edge [2] = sc = [e, -e] times src.x2: edge [2, 2] (aligned from the front):
    // row e = [[e * v, e * 1], [-e * 2, -e * -v]] with v = src(e).
    let srcs = [0.0, 3.0, 0.0, 2.0, 1.0, 3.0];
    let expect: Vec<f64> = srcs
        .iter()
        .enumerate()
        .flat_map(|(e, &v)| {
            let e = e as f64;
            [e * v, e * 1.0, -e * 2.0, -e * -v]
        })
        .collect();
    check(
        |b| {
            let a = b.input("sc", Domain::Edge, &[2])?;
            let x = b.input("x2", Domain::Node, &[2, 2])?;
            let xs = b.gather(x, Index::Node(Endpoint::Src))?;
            b.binary(BinaryOp::Mul, a, xs)
        },
        &[],
        &expect,
    );
}

#[test]
fn binary_with_a_shared_weight_matrix() {
    // h: node [2] + S: shared [2, 3]: h[i] is added to row i of S.
    let sw = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let expect: Vec<f64> = [(1.0, 2.0), (3.0, -1.0), (0.0, 4.0), (-2.0, 1.0), (5.0, 5.0)]
        .iter()
        .flat_map(|&(a, c)| [a + 1.0, a + 2.0, a + 3.0, c + 4.0, c + 5.0, c + 6.0])
        .collect();
    check(
        |b| {
            let x = h(b)?;
            let w = b.weight("S", WeightKind::Shared, &[2, 3], Init::Glorot)?;
            b.binary(BinaryOp::Add, x, w)
        },
        &[("S", &sw)],
        &expect,
    );
}

#[test]
fn unary_functions() {
    let x = [1.0, 2.0, 3.0, -1.0, 0.5, -2.0];
    let un = |op: UnaryOp| {
        move |b: &mut ModuleBuilder| {
            let v = s(b)?;
            b.unary(op, v)
        }
    };
    check(un(UnaryOp::Neg), &[], &x.map(|v| -v));
    check(un(UnaryOp::Relu), &[], &[1.0, 2.0, 3.0, 0.0, 0.5, 0.0]);
    check(un(UnaryOp::LeakyRelu(0.2)), &[], &[1.0, 2.0, 3.0, 0.2 * -1.0, 0.5, 0.2 * -2.0]);
    let elu = |v: f64| if v > 0.0 { v } else { 1.5 * (v.exp() - 1.0) };
    check(un(UnaryOp::Elu(1.5)), &[], &x.map(elu));
    check(un(UnaryOp::Tanh), &[], &x.map(f64::tanh));
    check(un(UnaryOp::Sigmoid), &[], &x.map(|v| 1.0 / (1.0 + (-v).exp())));
    check(un(UnaryOp::Exp), &[], &x.map(f64::exp));
    // GELU x * Phi(x); Phi(1) = 0.8413447460685429, Phi(2) = 0.9772498680518208,
    // Phi(3) = 0.9986501019683699, Phi(0.5) = 0.6914624612740131 (normal tables, 16 digits).
    let gelu = [
        1.0 * 0.8413447460685429,
        2.0 * 0.9772498680518208,
        3.0 * 0.9986501019683699,
        -1.0 * (1.0 - 0.8413447460685429),
        0.5 * 0.6914624612740131,
        -2.0 * (1.0 - 0.9772498680518208),
    ];
    check(un(UnaryOp::Gelu), &[], &gelu);
    // log and sqrt of sc + 1 = [e + 1, 1 - e] (NaN-free on element 0 only: check those).
    let out = run(
        |b| {
            let v = b.input("sc", Domain::Edge, &[2])?;
            let c = b.constant(1.0)?;
            let y = b.binary(BinaryOp::Add, v, c)?;
            let l = b.unary(UnaryOp::Log, y)?;
            b.unary(UnaryOp::Sqrt, l)
        },
        &[],
    );
    let out = out.unwrap_or_else(|e| panic!("{e}"));
    let firsts: Vec<f64> = (0..6).map(|e| out.row(e)[0]).collect();
    assert_close(
        &firsts,
        &[
            0.0,
            2f64.ln().sqrt(),
            3f64.ln().sqrt(),
            4f64.ln().sqrt(),
            5f64.ln().sqrt(),
            6f64.ln().sqrt(),
        ],
    );
}

#[test]
fn dot_products() {
    // [2] . [2] -> []: h . h.
    check(
        |b| {
            let x = h(b)?;
            b.dot(x, x)
        },
        &[],
        &[1.0 + 4.0, 9.0 + 1.0, 0.0 + 16.0, 4.0 + 1.0, 25.0 + 25.0],
    );
    // [2, 2] . [2] -> [2] (the vector broadcast over heads): x2 row v = [[v, 1], [2, -v]] . [1, 10].
    let expect: Vec<f64> = (0..5).flat_map(|v| [v as f64 + 10.0, 2.0 - 10.0 * v as f64]).collect();
    check(
        |b| {
            let x = b.input("x2", Domain::Node, &[2, 2])?;
            let w = b.weight("u", WeightKind::Shared, &[2], Init::Glorot)?;
            b.dot(x, w)
        },
        &[("u", &[1.0, 10.0])],
        &expect,
    );
    // [2, 2] . [2, 2] -> [2] per head: x2 . x2 = [v*v + 1, 4 + v*v].
    let expect: Vec<f64> = (0..5)
        .flat_map(|v| {
            let v = v as f64;
            [v * v + 1.0, 4.0 + v * v]
        })
        .collect();
    check(
        |b| {
            let x = b.input("x2", Domain::Node, &[2, 2])?;
            b.dot(x, x)
        },
        &[],
        &expect,
    );
}

#[test]
fn view_and_concat() {
    // view [2, 2] -> [4] keeps row-major order.
    let flat: Vec<f64> = (0..5).flat_map(|v| [v as f64, 1.0, 2.0, -(v as f64)]).collect();
    check(
        |b| {
            let x = b.input("x2", Domain::Node, &[2, 2])?;
            b.view(x, &[4])
        },
        &[],
        &flat,
    );
    // concat(h, bias) with a shared [1] bias = [9] broadcast to every node.
    let expect = [1.0, 2.0, 9.0, 3.0, -1.0, 9.0, 0.0, 4.0, 9.0, -2.0, 1.0, 9.0, 5.0, 5.0, 9.0];
    check(
        |b| {
            let x = h(b)?;
            let c = b.weight("c", WeightKind::Shared, &[1], Init::Zeros)?;
            b.concat(&[x, c])
        },
        &[("c", &[9.0])],
        &expect,
    );
    // concat along the last axis of [2, 2] and [2, 1] (view of h): per head [v, 1, h0] and [2, -v, h1].
    let hv = [(1.0, 2.0), (3.0, -1.0), (0.0, 4.0), (-2.0, 1.0), (5.0, 5.0)];
    let expect: Vec<f64> = hv
        .iter()
        .enumerate()
        .flat_map(|(v, &(a, c))| [v as f64, 1.0, a, 2.0, -(v as f64), c])
        .collect();
    check(
        |b| {
            let x = b.input("x2", Domain::Node, &[2, 2])?;
            let y = h(b)?;
            let y = b.view(y, &[2, 1])?;
            b.concat(&[x, y])
        },
        &[],
        &expect,
    );
}

// ---- compact rows ----------------------------------------------------------------------------

#[test]
fn compact_tables_by_relation_then_node() {
    let g = graph();
    let src = CompactTable::build(&g, Endpoint::Src);
    // (node, relation) pairs: r0 {0 (e0, e2), 2 (e3)}, r1 {1 (e4), 3 (e1, e5)}.
    assert_eq!(src.node, vec![0, 2, 1, 3]);
    assert_eq!(src.rel, vec![0, 0, 1, 1]);
    assert_eq!(src.rel_offsets, vec![0, 2, 4]);
    assert_eq!(src.edge_row, vec![0, 3, 0, 1, 2, 3]);
    let dst = CompactTable::build(&g, Endpoint::Dst);
    // r0 {1 (e0, e2), 2 (e3)}, r1 {0 (e4), 1 (e1), 2 (e5)}.
    assert_eq!(dst.node, vec![1, 2, 0, 1, 2]);
    assert_eq!(dst.edge_row, vec![0, 3, 0, 1, 2, 4]);
}

#[test]
fn compact_linear_then_edge_to_compact_equals_the_edge_level_product() {
    // Computed once per (src, relation) row: [h0.W0, h2.W0, h1.W1, h3.W1] = [5, 8, -4, 3];
    // read back by edge rows 0, 3, 0, 1, 2, 3.
    let expect = [5.0, 3.0, 5.0, 8.0, -4.0, 3.0];
    check(
        |b| {
            let x = h(b)?;
            let w = b.weight("W", WeightKind::PerRelation, &[2, 1], Init::Glorot)?;
            let xc = b.gather(x, Index::CompactNode(Endpoint::Src))?;
            let m = b.linear(xc, w, Select::Relation)?;
            b.gather(m, Index::EdgeToCompact(Endpoint::Src))
        },
        &[("W", W_REL)],
        &expect,
    );
}

#[test]
fn compact_dst_rows_select_types() {
    // Compact dst rows are keyed by destinations 1, 2, 0, 1, 2 (all type 0): DstType picks k0.
    check(
        |b| {
            let k = b.weight("k", WeightKind::PerNodeType, &[1], Init::Glorot)?;
            let kc = b.slice(k, Select::DstType, Domain::Compact(Endpoint::Dst))?;
            b.gather(kc, Index::EdgeToCompact(Endpoint::Dst))
        },
        &[("k", &[7.0, 8.0])],
        &[7.0; 6],
    );
    // SrcType of a compact dst row needs each relation's source type; relation 1 has none.
    let out = run(
        |b| {
            let k = b.weight("k", WeightKind::PerNodeType, &[1], Init::Glorot)?;
            let kc = b.slice(k, Select::SrcType, Domain::Compact(Endpoint::Dst))?;
            b.gather(kc, Index::EdgeToCompact(Endpoint::Dst))
        },
        &[],
    );
    assert!(matches!(out, Err(RuntimeError::Unsupported(ref m)) if m.contains("mixed")), "{out:?}");
}

// ---- a whole layer ---------------------------------------------------------------------------

#[test]
fn rgcn_layer_with_root_and_bias() {
    // out = mean_per_relation(src.h @ W[relation]) + h @ root + bias, root = [[1], [0]], bias = 0.5.
    // Messages (see linear_select_relation) [5, 3, 5, 8, -4, 3].
    // node 0: r1 {-4} + h0[0] + 0.5; node 1: mean r0 {5, 5} + r1 {3} + 3 + 0.5;
    // node 2: r0 {8} + r1 {3} + 0 + 0.5; node 3: -2 + 0.5; node 4: 5 + 0.5.
    let expect =
        [-4.0 + 1.0 + 0.5, 5.0 + 3.0 + 3.0 + 0.5, 8.0 + 3.0 + 0.0 + 0.5, -2.0 + 0.5, 5.0 + 0.5];
    check(
        |b| {
            let x = h(b)?;
            let w = b.weight("W", WeightKind::PerRelation, &[2, 1], Init::Glorot)?;
            let root = b.weight("root", WeightKind::Shared, &[2, 1], Init::Glorot)?;
            let bias = b.weight("bias", WeightKind::Shared, &[1], Init::Zeros)?;
            let xs = b.gather(x, Index::Node(Endpoint::Src))?;
            let m = b.linear(xs, w, Select::Relation)?;
            let agg = b.aggregate(AggOp::Mean, AggGroup::PerRelation, m)?;
            let r = b.linear(x, root, Select::Same)?;
            let y = b.binary(BinaryOp::Add, agg, r)?;
            b.binary(BinaryOp::Add, y, bias)
        },
        &[("W", W_REL), ("root", &[1.0, 0.0]), ("bias", &[0.5])],
        &expect,
    );
}

// ---- errors ----------------------------------------------------------------------------------

#[test]
fn missing_and_malformed_inputs_are_binding_errors() {
    let (module, store) = prepare(|b| b.input("z", Domain::Node, &[2]), &[]);
    let g = graph();
    let missing = interpret(&module, &g, &inputs(), &store);
    assert!(
        matches!(missing, Err(RuntimeError::Binding { ref name, .. }) if name == "z"),
        "{missing:?}"
    );
    // Wrong number of rows (an edge table bound to a node input).
    let wrong_rows = vec![("z".to_string(), tensor(6, &[2], vec![0.0; 12]))];
    let err = interpret(&module, &g, &wrong_rows, &store);
    assert!(
        matches!(err, Err(RuntimeError::Binding { ref message, .. }) if message.contains("5 rows")),
        "{err:?}"
    );
    // Wrong per-row shape.
    let wrong_shape = vec![("z".to_string(), tensor(5, &[3], vec![0.0; 15]))];
    let err = interpret(&module, &g, &wrong_shape, &store);
    assert!(
        matches!(err, Err(RuntimeError::Binding { ref message, .. }) if message.contains("[3]")),
        "{err:?}"
    );
}

#[test]
fn weights_that_do_not_fit_the_graph_are_weight_errors() {
    let (module, store) = prepare(
        |b| {
            let x = h(b)?;
            let w = b.weight("W", WeightKind::PerRelation, &[2, 1], Init::Glorot)?;
            let xs = b.gather(x, Index::Node(Endpoint::Src))?;
            b.linear(xs, w, Select::Relation)
        },
        &[("W", &[1.0, 2.0])], // one slice, the graph has two relations
    );
    let err = interpret(&module, &graph(), &inputs(), &store);
    assert!(
        matches!(err, Err(RuntimeError::Weights(ref m)) if m.contains("`W`") && m.contains("2 slices")),
        "{err:?}"
    );
}

#[test]
fn out_of_range_graph_ids_are_errors() {
    let (module, store) = prepare(
        |b| {
            let x = s(b)?;
            b.aggregate(AggOp::Sum, AggGroup::All, x)
        },
        &[],
    );
    let mut g = graph();
    g.dst[2] = 9;
    let err = interpret(&module, &g, &inputs(), &store);
    assert!(
        matches!(err, Err(RuntimeError::InvalidGraph(ref m)) if m.contains("edge 2")),
        "{err:?}"
    );
    let mut g = graph();
    g.rel[0] = 2;
    let err = interpret(&module, &g, &inputs(), &store);
    assert!(
        matches!(err, Err(RuntimeError::InvalidGraph(ref m)) if m.contains("relation 2")),
        "{err:?}"
    );
}

#[test]
fn inconsistent_modules_are_internal_errors() {
    // A hand-made module whose instruction uses a later value (the builder would refuse it).
    let (mut module, store) = prepare(
        |b| {
            let x = s(b)?;
            b.unary(UnaryOp::Neg, x)
        },
        &[],
    );
    let v0 = module.insts.keys().next().unwrap_or_else(|| panic!("empty module"));
    let v1 = module.insts.keys().nth(1).unwrap_or_else(|| panic!("short module"));
    module.insts[v1].op = pigeon_ir::Op::Unary { op: UnaryOp::Neg, x: v1 };
    let err = interpret(&module, &graph(), &inputs(), &store);
    assert!(
        matches!(err, Err(RuntimeError::Internal(ref m)) if m.contains("before its definition")),
        "{err:?}"
    );
    // A result type that disagrees with what the operator computes.
    let (mut module, store) = prepare(
        |b| {
            let x = s(b)?;
            b.unary(UnaryOp::Neg, x)
        },
        &[],
    );
    module.insts[v1].ty.shape = Shape(vec![3]);
    let _ = v0;
    let err = interpret(&module, &graph(), &inputs(), &store);
    assert!(matches!(err, Err(RuntimeError::Internal(ref m)) if m.starts_with("v1:")), "{err:?}");
}
