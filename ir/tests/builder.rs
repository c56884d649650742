//! The module builder: inferred types, errors for operands that do not fit, and the verifier
//! run by `finish`.

mod common;

use pigeon_ir::{
    AggGroup, AggOp, BinaryOp, DType, Domain, Endpoint, EntityId, Index, Init, IrError,
    ModuleBuilder, Op, Select, Shape, Type, ValueId, WeightId, WeightKind,
};

#[test]
fn types_are_inferred() {
    let m = common::rgat().unwrap();
    let types: Vec<String> = m.insts.values().map(|i| i.ty.to_string()).collect();
    // By hand: [4] @ [4, 1, 2] is the plain form, giving [1, 2]; dot over the last axis of
    // [1, 2] gives [1]; [1] * [1, 2] broadcasts to [1, 2]; summing edges into nodes keeps it.
    let expected = [
        "node [4] f32",
        "relation [4, 1, 2] f32",
        "relation [1, 2] f32",
        "edge [4] f32",
        "edge [1, 2] f32",
        "edge [1, 2] f32",
        "edge [1] f32",
        "edge [1] f32",
        "edge [1] f32",
        "edge [1, 2] f32",
        "node [1, 2] f32",
    ];
    assert_eq!(types, expected);
    assert_eq!(
        m.params,
        vec![("in_dim".to_string(), 4), ("out_dim".to_string(), 2), ("heads".to_string(), 1)]
    );
    assert_eq!(m.insts[ValueId::new(4)].name.as_deref(), Some("z"));
    assert_eq!(m.outputs, vec![("out".to_string(), ValueId::new(10))]);
    assert_eq!(m.weights[WeightId::new(1)].name, "a_src");
}

#[test]
fn operands_that_do_not_fit_are_errors_and_add_nothing() {
    let mut b = ModuleBuilder::new("m");
    let h = b.input("h", Domain::Node, &[4]).unwrap();
    let w = b.weight("W", WeightKind::Shared, &[3, 2], Init::Zeros).unwrap();
    let err = b.linear(h, w, Select::Same).unwrap_err();
    assert_eq!(
        err,
        IrError::Type {
            value: ValueId::new(2),
            message: "cannot multiply a [4] row by a [3, 2] weight".into()
        }
    );
    assert_eq!(err.to_string(), "v2: cannot multiply a [4] row by a [3, 2] weight");
    let err = b.softmax(h).unwrap_err();
    assert_eq!(err.to_string(), "v2: softmax takes an edge value, got a node value");
    let err = b.gather(ValueId::new(7), Index::Node(Endpoint::Src)).unwrap_err();
    assert_eq!(err.to_string(), "v2: v7 is not defined before use");
    assert_eq!(b.module().insts.len(), 2);
    // The builder is still usable after an error.
    let e = b.gather(h, Index::Node(Endpoint::Dst)).unwrap();
    assert_eq!(e, ValueId::new(2));
    assert_eq!(
        b.ty(e),
        Some(&Type { domain: Domain::Edge, shape: Shape(vec![4]), dtype: DType::F32 })
    );
}

#[test]
fn declarations_are_checked() {
    let mut b = ModuleBuilder::new("m");
    assert_eq!(
        b.input("h", Domain::Relation, &[4]).unwrap_err().to_string(),
        "v0: input \"h\" must be in a row domain, not relation"
    );
    b.weight("W", WeightKind::Shared, &[2], Init::Ones).unwrap();
    assert_eq!(
        b.weight("W", WeightKind::Shared, &[2], Init::Ones).unwrap_err().to_string(),
        "v1: weight \"W\" is already declared"
    );
    assert_eq!(
        b.weight("V", WeightKind::PerRelation, &[2, 0], Init::Ones).unwrap_err().to_string(),
        "v1: weight \"V\" has an extent of 0 in [2, 0]"
    );
    assert_eq!(b.module().weights.len(), 1);
    // A declared weight may enter the graph again.
    let again = b.weight_value(WeightId::new(0));
    assert_eq!(b.module().insts[again].op, Op::Weight(WeightId::new(0)));
}

#[test]
fn finish_runs_the_verifier() {
    let mut b = ModuleBuilder::new("m");
    let h = b.input("h", Domain::Edge, &[2]).unwrap();
    let s = b.aggregate(AggOp::Max, AggGroup::PerRelation, h).unwrap();
    let c = b.constant(2.0).unwrap();
    b.binary(BinaryOp::Div, s, c).unwrap();
    b.weight_value(WeightId::new(5));
    b.output("o", s).output("o", ValueId::new(99));
    match b.finish() {
        Err(IrError::Invalid(errors)) => {
            let got: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            assert_eq!(
                got,
                [
                    "v4: weight w5 is not declared (invariant 5)",
                    "output \"o\": refers to v99, which is not defined (invariant 10)",
                    "output \"o\": output name is used twice (invariant 10)",
                ]
            );
        }
        other => panic!("expected the verifier's errors, got {other:?}"),
    }
}
