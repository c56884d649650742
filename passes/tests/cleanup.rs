//! Cleanup (CSE + DCE): duplicate and dead instructions go, inputs, weights and names stay, the
//! result verifies and computes what the input computes (reference interpreter, every zoo model,
//! adversarial graphs).

use pigeon_frontend::SourceFile;
use pigeon_ir::{Index, Module, Op, ValueId};
use pigeon_passes::cleanup::{cleanup, cleanup_with_map};
use pigeon_runtime::bind::bind_inputs;
use pigeon_runtime::graph::{HeteroGraph, Relation};
use pigeon_runtime::interp::interpret;
use pigeon_runtime::weights::WeightStore;

fn graph(name: &str, types: &[usize], relations: usize, edges: &[(u32, u32, u32)]) -> HeteroGraph {
    let mut type_offsets = vec![0];
    for &n in types {
        type_offsets.push(type_offsets.last().copied().unwrap_or(0) + n);
    }
    HeteroGraph {
        name: name.into(),
        node_types: (0..types.len()).map(|t| format!("t{t}")).collect(),
        type_offsets,
        relations: (0..relations)
            .map(|r| Relation { name: format!("r{r}"), src_type: None, dst_type: None })
            .collect(),
        src: edges.iter().map(|e| e.0).collect(),
        dst: edges.iter().map(|e| e.1).collect(),
        rel: edges.iter().map(|e| e.2).collect(),
        base_relations: relations,
        ..HeteroGraph::default()
    }
}

fn graphs() -> Vec<HeteroGraph> {
    let mixed = [
        (0, 1, 0),
        (0, 1, 0), // multi-edge
        (2, 1, 1),
        (1, 1, 2), // self-loop
        (3, 0, 0),
        (4, 0, 1),
        (5, 0, 2),
        (1, 2, 0),
        (0, 4, 1),
        (3, 3, 1), // self-loop
        (4, 5, 0),
    ]; // node 6 isolated
    vec![
        graph("mixed", &[4, 3], 3, &mixed),
        graph("empty-relation", &[4], 3, &[(0, 1, 0), (1, 2, 2), (2, 2, 2)]),
        graph("single-edge", &[2], 2, &[(0, 1, 1)]),
        graph("untouched-type", &[3, 2], 2, &[(0, 2, 0), (2, 0, 1), (1, 1, 0)]),
        graph("one-relation", &[3], 1, &[(0, 1, 0), (0, 1, 0), (2, 2, 0)]),
    ]
}

fn compile(name: &str, text: &str, params: &[(String, i64)]) -> Module {
    let src = SourceFile { name: name.into(), text: text.into() };
    pigeon_frontend::compile(&src, None, params).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

fn read(rel: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn clean(m: &Module) -> Module {
    let out = cleanup(m);
    if let Err(errs) = pigeon_ir::verify(&out) {
        panic!("{} does not verify after cleanup: {errs:?}\n{}", m.name, pigeon_ir::print(&out));
    }
    assert_eq!(out.weights, m.weights, "weights are kept as they are");
    out
}

fn assert_same(before: &Module, after: &Module, g: &HeteroGraph) {
    let mut weights = WeightStore::init(before, g.num_relations(), g.num_node_types(), 9);
    weights.perturb(0.3, 4);
    let (inputs, _) = bind_inputs(before, g, 2).expect("bind inputs");
    let want = interpret(before, g, &inputs, &weights).expect("interpret original");
    let got = interpret(after, g, &inputs, &weights).expect("interpret cleaned");
    assert_eq!(want.len(), got.len());
    for ((n1, a), (n2, b)) in want.iter().zip(&got) {
        assert_eq!((n1, a.rows, &a.shape), (n2, b.rows, &b.shape));
        for (x, y) in a.data.iter().zip(&b.data) {
            assert!(
                (x - y).abs() <= 1e-9 * (1.0 + x.abs().max(y.abs())),
                "{}: {x} vs {y}",
                before.name
            );
        }
    }
}

fn count(m: &Module, f: impl Fn(&Op) -> bool) -> usize {
    m.insts.values().filter(|i| f(&i.op)).count()
}

#[test]
fn rgcn_layers_loses_its_duplicate_gathers_and_linears() {
    let m = compile("rgcn_layers", &read("tests/filetests/inter/rgcn_layers.rgnn"), &[]);
    let gathers =
        |m: &Module| count(m, |op| matches!(op, Op::Gather { index: Index::Node(_), .. }));
    let edge_linears = |m: &Module| {
        m.insts
            .values()
            .filter(|i| matches!(i.op, Op::Linear { .. }) && i.ty.domain == pigeon_ir::Domain::Edge)
            .count()
    };
    let weights = |m: &Module| count(m, |op| matches!(op, Op::Weight(_)));
    // From the golden dump: `gather v0 by src` twice per layer, and `linear _, W by relation`
    // twice per layer; each weight is read once.
    assert_eq!((gathers(&m), edge_linears(&m), weights(&m), m.insts.len()), (4, 4, 4, 27));
    let out = clean(&m);
    assert_eq!((gathers(&out), edge_linears(&out), weights(&out), out.insts.len()), (2, 2, 4, 23));
    for g in graphs() {
        assert_same(&m, &out, &g);
    }
}

#[test]
fn hgt_loses_duplicate_slices_sigmoids_and_constants() {
    let params = [("in_dim".to_string(), 8), ("out_dim".to_string(), 8), ("heads".to_string(), 1)];
    let m = compile("hgt", &read("examples/hgt.rgnn"), &params);
    let skip = |m: &Module| {
        let w = m.weight_by_name("skip").expect("skip weight");
        let wv: Vec<ValueId> =
            m.insts.iter().filter(|(_, i)| i.op == Op::Weight(w)).map(|(v, _)| v).collect();
        count(m, |op| matches!(op, Op::Slice { w, .. } if wv.contains(w)))
    };
    let sigmoids =
        |m: &Module| count(m, |op| matches!(op, Op::Unary { op: pigeon_ir::UnaryOp::Sigmoid, .. }));
    let ones = |m: &Module| count(m, |op| *op == Op::Const(1.0));
    // `sigmoid(skip[ntype])` is written twice in hgt.rgnn, and `1.0` appears twice.
    assert_eq!((skip(&m), sigmoids(&m), ones(&m)), (2, 2, 2));
    let out = clean(&m);
    assert_eq!((skip(&out), sigmoids(&out), ones(&out)), (1, 1, 1));
    for g in graphs() {
        assert_same(&m, &out, &g);
    }
}

const FIXTURE: &str = r#"
model fixture(d = 2)

weight w0 "W": relation [2, 2] glorot
weight w1 "unused_w": shared [2] zeros

v0 = input "h"                  : node [2] f32          ; h
v1 = input "unused"             : edge [] f32           ; unused
v2 = gather v0 by src           : edge [2] f32
v3 = gather v0 by src           : edge [2] f32          ; second
v4 = weight w0                  : relation [2, 2] f32   ; W
v5 = linear v2, v4 by relation  : edge [2] f32          ; first
v6 = linear v3, v4 by relation  : edge [2] f32          ; other
v7 = exp v6                     : edge [2] f32          ; dead
v8 = weight w1                  : shared [2] f32
v9 = aggregate sum v6           : node [2] f32
v10 = add v9, v8                : node [2] f32
v11 = add v9, v8                : node [2] f32          ; out

output "out" = v11
output "again" = v10
"#;

#[test]
fn dead_code_goes_inputs_stay_names_merge() {
    let m = pigeon_ir::parse_module(FIXTURE).expect("fixture parses");
    let (out, map) = cleanup_with_map(&m);
    pigeon_ir::verify(&out).expect("verifies");
    // Kept: h, unused (an input), one gather, W, one linear, w1, the aggregate, one add.
    assert_eq!(out.insts.len(), 8, "{}", pigeon_ir::print(&out));
    let ids = |xs: &[usize]| xs.iter().map(|&i| map[i].map(|v| v.to_string())).collect::<Vec<_>>();
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        ids(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
        vec![
            some("v0"),
            some("v1"),
            some("v2"),
            some("v2"),
            some("v3"),
            some("v4"),
            some("v4"),
            None,
            some("v5"),
            some("v6"),
            some("v7"),
            some("v7")
        ]
    );
    // `v2` had no name, its copy `v3` had one: the copy's name is taken. `v5` and `v6` both had
    // one: the first stays. `v10` had none, `v11` had `out`.
    let name = |i: usize| out.insts.values().nth(i).and_then(|inst| inst.name.clone());
    assert_eq!((name(2), name(4), name(7)), (some("second"), some("first"), some("out")));
    assert!(out.insts.values().all(|i| i.name.as_deref() != Some("dead")));
    // Both outputs now name the one add.
    assert_eq!(out.outputs.iter().map(|(_, v)| v.to_string()).collect::<Vec<_>>(), ["v7", "v7"]);
    // Weights are untouched, even one no instruction reads any more.
    assert_eq!(out.weights, m.weights);
    // Values are dense and every operand precedes its user.
    for (v, inst) in out.insts.iter() {
        assert!(inst.op.operands().iter().all(|x| *x < v));
    }
}

#[test]
fn zoo_models_keep_their_function_and_cleanup_is_idempotent() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|x| x.to_str()) != Some("rgnn") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let default = compile("probe", &text, &[]);
        let small = [
            ("in_dim", 8),
            ("out_dim", 8),
            ("hidden", 6),
            ("classes", 3),
            ("pool_dim", 5),
            ("edge_dim", 4),
            ("heads", 2),
        ];
        let params: Vec<(String, i64)> = small
            .iter()
            .filter(|(k, _)| default.params.iter().any(|(p, _)| p == k))
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        let m = compile(&path.display().to_string(), &text, &params);
        let out = clean(&m);
        assert!(out.insts.len() <= m.insts.len());
        assert_eq!(out.inputs(), m.inputs(), "inputs are the interface");
        assert_eq!(clean(&out), out, "{}: a second cleanup changes nothing", m.name);
        for g in graphs() {
            assert_same(&m, &out, &g);
        }
        n += 1;
    }
    assert!(n >= 8, "the zoo has at least 8 models, found {n}");
}
