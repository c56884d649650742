//! Modules shared by the IR's integration tests, built by hand with the builder.

#![allow(dead_code)]

use pigeon_ir::{
    AggGroup, AggOp, BinaryOp, DType, Domain, Endpoint, Index, Init, IrError, Module,
    ModuleBuilder, Select, UnaryOp, WeightKind,
};

/// A one-head RGAT layer: the example of the text form's module doc.
pub fn rgat() -> Result<Module, IrError> {
    let mut b = ModuleBuilder::new("rgat");
    b.param("in_dim", 4).param("out_dim", 2).param("heads", 1);
    let h = b.input("h", Domain::Node, &[4])?;
    let w = b.weight("W", WeightKind::PerRelation, &[4, 1, 2], Init::Glorot)?;
    let a = b.weight("a_src", WeightKind::PerRelation, &[1, 2], Init::Glorot)?;
    let hs = b.gather(h, Index::Node(Endpoint::Src))?;
    let z = b.linear(hs, w, Select::Relation)?;
    b.name(z, "z");
    let asl = b.slice(a, Select::Relation, Domain::Edge)?;
    let s = b.dot(z, asl)?;
    let s = b.unary(UnaryOp::LeakyRelu(0.2), s)?;
    b.name(s, "score");
    let alpha = b.softmax(s)?;
    b.name(alpha, "alpha");
    let m = b.binary(BinaryOp::Mul, alpha, z)?;
    let out = b.aggregate(AggOp::Sum, AggGroup::All, m)?;
    b.name(out, "out");
    b.output("out", out);
    b.finish()
}

/// A module that uses every operator, domain, selector, index, unary and binary function,
/// aggregation, weight kind and initialiser, both dtypes, several outputs, and names that need
/// quoting.
pub fn everything() -> Result<Module, IrError> {
    let mut b = ModuleBuilder::new("every thing");
    b.param("in_dim", 4).param("heads", 2).param("odd name", -3);
    let h = b.input("h", Domain::Node, &[4])?;
    let norm = b.input("norm", Domain::Edge, &[])?;
    let x64 = b.input("x\"64\"\n", Domain::Edge, &[3])?;
    let w = b.weight("l1.W", WeightKind::PerRelation, &[4, 2, 2], Init::Glorot)?;
    let root = b.weight("root", WeightKind::Shared, &[4, 4], Init::Zeros)?;
    let an = b.weight("A", WeightKind::PerNodeType, &[4, 4], Init::Ones)?;
    let k = b.weight("K é\\", WeightKind::PerNodeType, &[2, 2], Init::Glorot)?;
    let a = b.weight("a", WeightKind::PerRelation, &[2, 2], Init::Glorot)?;
    let hs = b.gather(h, Index::Node(Endpoint::Src))?;
    let hd = b.gather(h, Index::Node(Endpoint::Dst))?;
    let z = b.linear(hs, w, Select::Relation)?;
    b.name(z, "l1.z");
    let hcs = b.gather(h, Index::CompactNode(Endpoint::Src))?;
    let hcd = b.gather(h, Index::CompactNode(Endpoint::Dst))?;
    let zcs = b.linear(hcs, w, Select::Relation)?;
    let zcd = b.linear(hcd, w, Select::Relation)?;
    let zes = b.gather(zcs, Index::EdgeToCompact(Endpoint::Src))?;
    let zed = b.gather(zcd, Index::EdgeToCompact(Endpoint::Dst))?;
    let ae = b.slice(a, Select::Relation, Domain::Edge)?;
    let ks = b.slice(k, Select::SrcType, Domain::Edge)?;
    let kd = b.slice(k, Select::DstType, Domain::Edge)?;
    let kn = b.slice(k, Select::NodeType, Domain::Node)?;
    let rn = b.slice(root, Select::Same, Domain::Node)?;
    let hn = b.linear(h, an, Select::NodeType)?;
    let hr = b.linear(hn, root, Select::Same)?;
    let re = b.slice(root, Select::Same, Domain::Edge)?;
    let hdk = b.linear(hd, re, Select::Same)?;
    let hrn = b.linear(hr, rn, Select::Same)?;
    let s = b.dot(z, ae)?;
    b.name(s, "a b\"c\n");
    let mut u = s;
    for op in [
        UnaryOp::Neg,
        UnaryOp::Relu,
        UnaryOp::LeakyRelu(0.2),
        UnaryOp::Elu(1.0),
        UnaryOp::Gelu,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::LeakyRelu(-1e-7),
        UnaryOp::Elu(0.30000000000000004),
    ] {
        u = b.unary(op, u)?;
    }
    let c = b.constant(0.125)?;
    let big = b.constant(-1.7976931348623157e308)?;
    let mut t = u;
    for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max] {
        t = b.binary(op, t, c)?;
    }
    let t = b.binary(BinaryOp::Add, big, t)?;
    let t = b.binary(BinaryOp::Mul, t, norm)?;
    let alpha = b.softmax(t)?;
    let m = b.binary(BinaryOp::Mul, alpha, zes)?;
    let m = b.binary(BinaryOp::Add, m, zed)?;
    let m = b.binary(BinaryOp::Add, m, ks)?;
    let m = b.binary(BinaryOp::Sub, m, kd)?;
    let same = b.linear(t, m, Select::Same)?;
    let sum = b.aggregate(AggOp::Sum, AggGroup::All, m)?;
    let mean = b.aggregate(AggOp::Mean, AggGroup::PerRelation, m)?;
    let max = b.aggregate(AggOp::Max, AggGroup::All, same)?;
    let mx = b.aggregate(AggOp::Max, AggGroup::PerRelation, hdk)?;
    let agg = b.binary(BinaryOp::Add, sum, mean)?;
    let agg = b.binary(BinaryOp::Add, agg, kn)?;
    let flat = b.view(agg, &[4])?;
    let cat = b.concat(&[flat, hrn, max])?;
    let one = b.concat(&[mx])?;
    b.name(cat, "out");
    b.output("out", cat).output("max per relation", one).output("x64", x64);
    let mut module = b.finish()?;
    module.insts[x64].ty.dtype = DType::F64;
    Ok(module)
}
