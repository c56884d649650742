//! Requests too large for any machine are refused with a [`RuntimeError::TooLarge`] that names
//! what needs how much memory, before anything is allocated (these used to abort the process on
//! allocation failure, or get it killed by the kernel). Every size here is in the tebibytes, so
//! the tests hold on any machine.

use pigeon_ir::builder::ModuleBuilder;
use pigeon_ir::{BinaryOp, Domain, Init, Module, WeightKind};
use pigeon_runtime::graph::{HeteroGraph, Relation};
use pigeon_runtime::loaders::{generate, SyntheticParams};
use pigeon_runtime::{bind_inputs, interpret, RuntimeError, Tensor, WeightStore};

fn too_large<T: std::fmt::Debug>(r: Result<T, RuntimeError>) -> String {
    match r {
        Err(e @ RuntimeError::TooLarge { .. }) => e.to_string(),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

fn finish(b: ModuleBuilder) -> Module {
    b.finish().unwrap_or_else(|e| panic!("{e}"))
}

/// A graph of `nodes` nodes of one type and 2 edges of one relation.
fn graph(nodes: usize) -> HeteroGraph {
    HeteroGraph {
        node_types: vec!["n".into()],
        type_offsets: vec![0, nodes],
        relations: vec![Relation { name: "r".into(), src_type: Some(0), dst_type: Some(0) }],
        src: vec![0, 1],
        dst: vec![1, 0],
        rel: vec![0, 0],
        ..HeteroGraph::default()
    }
}

#[test]
fn weights_too_large_are_refused_with_their_size() {
    // `W[relation]: [65536, 32768]` on a graph with a million relations: 10^6 x 2^34 bytes = 15.3 PiB.
    let mut b = ModuleBuilder::new("big");
    let w = b.weight("W", WeightKind::PerRelation, &[65536, 32768], Init::Glorot);
    let w = w.unwrap_or_else(|e| panic!("{e}"));
    b.output("W", w);
    let m = too_large(WeightStore::try_init(&finish(b), 1_000_000, 1, 0));
    assert!(m.contains("weight `W` (1000000 x [65536, 32768] f64) needs 15.3 PiB"), "{m}");
    assert!(m.contains("memory"), "{m}");
}

#[test]
fn small_weights_still_initialise() {
    let mut b = ModuleBuilder::new("small");
    let w = b.weight("W", WeightKind::PerRelation, &[4, 2], Init::Glorot);
    b.output("W", w.unwrap_or_else(|e| panic!("{e}")));
    let m = finish(b);
    let checked = WeightStore::try_init(&m, 3, 1, 5).map_err(|e| e.to_string());
    assert_eq!(checked, Ok(WeightStore::init(&m, 3, 1, 5)));
}

#[test]
fn random_inputs_too_large_are_refused() {
    // 2^32 nodes of 2^31 features: 64 EiB; nothing is allocated per node before the check.
    let mut b = ModuleBuilder::new("wide");
    let h = b.input("h", Domain::Node, &[1 << 31]).unwrap_or_else(|e| panic!("{e}"));
    b.output("h", h);
    let m = too_large(bind_inputs(&finish(b), &graph(1 << 32), 0));
    assert!(
        m.contains("input `h` (4294967296 node rows of [2147483648] f64) needs 64.0 EiB"),
        "{m}"
    );
}

#[test]
fn intermediate_values_too_large_are_refused_before_they_are_computed() {
    // [2^20] + [1, 2^20] broadcasts to [2^20, 2^20] per node: 4 nodes need 32 TiB.
    let n = 1 << 20;
    let mut b = ModuleBuilder::new("bcast");
    let a = b.input("a", Domain::Node, &[n]).unwrap_or_else(|e| panic!("{e}"));
    let w = b.weight("w", WeightKind::Shared, &[1, n], Init::Zeros);
    let w = w.unwrap_or_else(|e| panic!("{e}"));
    let y = b.binary(BinaryOp::Add, a, w).unwrap_or_else(|e| panic!("{e}"));
    b.name(y, "y");
    b.output("y", y);
    let module = finish(b);
    let g = graph(4);
    let weights = WeightStore::init(&module, 1, 1, 0);
    let inputs = vec![("a".to_string(), Tensor::zeros(4, pigeon_ir::Shape(vec![n])))];
    let m = too_large(interpret(&module, &g, &inputs, &weights));
    assert!(m.contains("`y`") && m.contains("4 node rows of [1048576, 1048576] f64"), "{m}");
    assert!(m.contains("needs 32.0 TiB"), "{m}");
}

#[test]
fn synthetic_graphs_too_large_are_refused() {
    // 2^34 edges and 2^32 - 1 relations: 448 GiB of ids and relation records.
    let available = pigeon_runtime::memory::available_memory().unwrap_or(0);
    if available >= 448 << 30 {
        eprintln!(
            "skipped: this machine has {available} bytes available, more than the 448 GiB tested"
        );
        return;
    }
    let p = SyntheticParams {
        nodes: 5,
        edges: 1 << 34,
        relations: u32::MAX as usize,
        ntypes: 1,
        seed: 0,
    };
    let m = too_large(generate(&p));
    assert!(m.contains("the graph `synthetic:nodes=5,edges=17179869184"), "{m}");
    assert!(m.contains("needs 448.0 GiB"), "{m}");
}
