//! The verifier: one module per invariant that breaks it, built from struct literals, and the
//! exact list of violations it reports.

mod common;

use pigeon_ir::InputKind;
use pigeon_ir::{
    verify, AggGroup, AggOp, BinaryOp, DType, Domain, Endpoint, EntityId, Index, Init, Inst,
    Module, Op, Select, Shape, Type, UnaryOp, ValueId, Weight, WeightId, WeightKind,
};

fn ty(domain: Domain, shape: &[usize]) -> Type {
    Type { domain, shape: Shape(shape.to_vec()), dtype: DType::F32 }
}

fn v(i: usize) -> ValueId {
    ValueId::new(i)
}

fn w(i: usize) -> WeightId {
    WeightId::new(i)
}

/// A module with the given weights (name, kind, shape) and instructions (op, domain, shape).
fn module(weights: &[(&str, WeightKind, &[usize])], insts: Vec<(Op, Domain, &[usize])>) -> Module {
    let mut m = Module { name: "m".into(), ..Module::default() };
    for (name, kind, shape) in weights {
        m.weights.push(Weight {
            name: name.to_string(),
            kind: *kind,
            shape: Shape(shape.to_vec()),
            init: Init::Glorot,
        });
    }
    for (op, domain, shape) in insts {
        m.insts.push(Inst { op, ty: ty(domain, shape), name: None });
    }
    m
}

fn input(name: &str) -> Op {
    Op::Input { name: name.into(), kind: InputKind::Data }
}

/// Verifies `m` and checks the violations it reports, each as `location: message (invariant n)`.
fn check(m: &Module, expected: &[&str]) {
    let got: Vec<String> = match verify(m) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    };
    assert_eq!(got, expected);
}

#[test]
fn hand_built_modules_verify() {
    check(&common::rgat().unwrap(), &[]);
    check(&common::everything().unwrap(), &[]);
}

#[test]
fn inv1_parameter_names_unique() {
    let mut m = module(&[], vec![]);
    m.params = vec![("a".into(), 1), ("b".into(), 2), ("a".into(), 3)];
    check(&m, &["model: parameter \"a\" is declared twice (invariant 1)"]);
}

#[test]
fn inv2_weight_names_unique() {
    let m =
        module(&[("W", WeightKind::Shared, &[2]), ("W", WeightKind::PerRelation, &[2])], vec![]);
    check(&m, &["w1: weight name \"W\" is declared twice (invariant 2)"]);
}

#[test]
fn inv3_weight_extents_positive() {
    let m = module(&[("W", WeightKind::Shared, &[2, 0])], vec![]);
    check(&m, &["w0: shape [2, 0] has an extent of 0 (invariant 3)"]);
}

#[test]
fn inv4_operands_are_earlier() {
    let m = module(
        &[],
        vec![
            (input("h"), Domain::Node, &[4]),
            (Op::Unary { op: UnaryOp::Relu, x: v(2) }, Domain::Node, &[4]),
            (Op::Unary { op: UnaryOp::Relu, x: v(2) }, Domain::Node, &[4]),
            (Op::Binary { op: BinaryOp::Add, a: v(0), b: v(9) }, Domain::Node, &[4]),
        ],
    );
    check(
        &m,
        &[
            "v1: operand v2 refers to a later value (invariant 4)",
            "v2: operand v2 refers to itself (invariant 4)",
            "v3: operand v9 refers to no value (invariant 4)",
        ],
    );
}

#[test]
fn inv5_weight_values_match_their_declaration() {
    let m = module(
        &[("W", WeightKind::PerRelation, &[4, 2])],
        vec![
            (Op::Weight(w(0)), Domain::Relation, &[4, 2]),
            (Op::Weight(w(1)), Domain::Shared, &[]),
            (Op::Weight(w(0)), Domain::Shared, &[4, 2]),
            (Op::Weight(w(0)), Domain::Relation, &[2, 4]),
        ],
    );
    check(
        &m,
        &[
            "v1: weight w1 is not declared (invariant 5)",
            "v2: type shared [4, 2] f32 does not match weight w0 (relation [4, 2]) (invariant 5)",
            "v3: type relation [2, 4] f32 does not match weight w0 (relation [4, 2]) (invariant 5)",
        ],
    );
}

#[test]
fn inv5_weight_dtype_is_free() {
    let mut m = module(
        &[("W", WeightKind::PerNodeType, &[4])],
        vec![(Op::Weight(w(0)), Domain::NodeType, &[4])],
    );
    m.insts[v(0)].ty.dtype = DType::F64;
    check(&m, &[]);
}

#[test]
fn inv6_inputs_are_row_values_and_unique() {
    let table = |name: &str| Op::Input { name: name.into(), kind: InputKind::Table(Init::Glorot) };
    let m = module(
        &[],
        vec![
            (input("h"), Domain::Node, &[4]),
            (input("e"), Domain::Edge, &[]),
            (input("s"), Domain::Shared, &[4]),
            (input("h"), Domain::Edge, &[4]),
            (input("c"), Domain::Compact(Endpoint::Src), &[4]),
            (table("t"), Domain::Compact(Endpoint::Dst), &[4]),
            (table("u"), Domain::Edge, &[4]),
            (Op::Input { name: "d".into(), kind: InputKind::Dropout(1.0) }, Domain::Node, &[4]),
        ],
    );
    check(
        &m,
        &[
            "v2: input \"s\" is in domain shared, not a row domain (invariant 6)",
            "v3: input name \"h\" is used twice (invariant 6)",
            "v6: learned input \"u\" is in domain edge (tables are per node or per (node, \
             relation) pair) (invariant 6)",
            "v7: dropout input \"d\" has probability 1, not in [0, 1) (invariant 6)",
        ],
    );
}

#[test]
fn inv7_concat_is_not_empty() {
    let m = module(&[], vec![(Op::Concat { xs: vec![] }, Domain::Node, &[4])]);
    check(&m, &["v0: concat has no operand (invariant 7)"]);
}

#[test]
fn inv8_types_are_inferred_types() {
    let m = module(
        &[("W", WeightKind::PerRelation, &[4, 2])],
        vec![
            (input("h"), Domain::Node, &[4]),
            (Op::Weight(w(0)), Domain::Relation, &[4, 2]),
            // v2: right op, wrong shape.
            (Op::Gather { x: v(0), index: Index::Node(Endpoint::Src) }, Domain::Edge, &[2]),
            // v3: node rows cannot select by relation.
            (Op::Linear { x: v(0), w: v(1), by: Select::Relation }, Domain::Node, &[2]),
            // v4: src.ntype needs an edge-like row and an ntype weight.
            (
                Op::Slice { w: v(1), by: Select::SrcType, domain: Domain::Edge },
                Domain::Edge,
                &[4, 2],
            ),
            // v5, v6: softmax and aggregation take edge values.
            (Op::EdgeSoftmax { x: v(0) }, Domain::Node, &[4]),
            (Op::Aggregate { op: AggOp::Sum, group: AggGroup::All, x: v(0) }, Domain::Node, &[4]),
            // v7: node and relation values do not combine.
            (Op::Binary { op: BinaryOp::Mul, a: v(0), b: v(1) }, Domain::Node, &[4, 2]),
            // v8: 4 elements are not 6.
            (Op::View { x: v(0), shape: Shape(vec![2, 3]) }, Domain::Node, &[2, 3]),
            // v9: a constant is a shared f32 scalar, whatever its declared type says.
            (Op::Const(1.0), Domain::Shared, &[1]),
            // v10: a dot product needs matching last axes.
            (Op::Dot { a: v(0), b: v(1) }, Domain::Node, &[4]),
            // v11: gather by compact.dst reads a compact.dst value.
            (
                Op::Gather { x: v(0), index: Index::EdgeToCompact(Endpoint::Dst) },
                Domain::Edge,
                &[4],
            ),
        ],
    );
    check(
        &m,
        &[
            "v2: declared type edge [2] f32 differs from the inferred edge [4] f32 (invariant 8)",
            "v3: node rows cannot select a relation weight by relation (invariant 8)",
            "v4: edge rows cannot select a relation weight by src.ntype (invariant 8)",
            "v5: softmax takes an edge value, got a node value (invariant 8)",
            "v6: aggregation takes an edge value, got a node value (invariant 8)",
            "v7: cannot combine a node value with a relation value (invariant 8)",
            "v8: cannot view [4] (4 elements) as [2, 3] (6 elements) (invariant 8)",
            "v9: declared type shared [1] f32 differs from the inferred shared [] f32 (invariant 8)",
            "v10: cannot combine a node value with a relation value (invariant 8)",
            "v11: gather by compact.dst reads a compact.dst value, but v0 is node (invariant 8)",
        ],
    );
}

#[test]
fn inv8_dtype_is_checked() {
    let mut m = module(
        &[],
        vec![
            (input("h"), Domain::Node, &[4]),
            (Op::Unary { op: UnaryOp::Exp, x: v(0) }, Domain::Node, &[4]),
        ],
    );
    m.insts[v(1)].ty.dtype = DType::F64;
    check(
        &m,
        &["v1: declared type node [4] f64 differs from the inferred node [4] f32 (invariant 8)"],
    );
}

#[test]
fn inv9_no_zero_extents() {
    let m = module(
        &[],
        vec![
            (input("h"), Domain::Node, &[4, 0]),
            (Op::View { x: v(0), shape: Shape(vec![0]) }, Domain::Node, &[0]),
            (input("g"), Domain::Node, &[4]),
            (Op::View { x: v(2), shape: Shape(vec![0, 4]) }, Domain::Node, &[4]),
        ],
    );
    check(
        &m,
        &[
            "v0: type node [4, 0] f32 has an extent of 0 (invariant 9)",
            "v1: type node [0] f32 has an extent of 0 (invariant 9)",
            "v3: cannot view [4] (4 elements) as [0, 4] (0 elements) (invariant 8)",
            "v3: view shape [0, 4] has an extent of 0 (invariant 9)",
        ],
    );
}

#[test]
fn inv10_outputs_exist_and_are_unique() {
    let mut m = module(&[], vec![(input("h"), Domain::Node, &[4])]);
    m.outputs = vec![("out".into(), v(0)), ("gone".into(), v(3)), ("out".into(), v(0))];
    check(
        &m,
        &[
            "output \"gone\": refers to v3, which is not defined (invariant 10)",
            "output \"out\": output name is used twice (invariant 10)",
        ],
    );
}

#[test]
fn every_violation_is_reported_in_module_order() {
    let mut m = module(
        &[("W", WeightKind::Shared, &[0])],
        vec![(input("h"), Domain::Shared, &[4]), (Op::Concat { xs: vec![] }, Domain::Node, &[4])],
    );
    m.params = vec![("p".into(), 1), ("p".into(), 1)];
    m.outputs = vec![("o".into(), v(5))];
    let errors = verify(&m).unwrap_err();
    let got: Vec<(String, u32)> = errors.iter().map(|e| (e.at.to_string(), e.invariant)).collect();
    let expected = [("model", 1), ("w0", 3), ("v0", 6), ("v1", 7), ("output \"o\"", 10)];
    assert_eq!(got, expected.map(|(a, n)| (a.to_string(), n)));
}
