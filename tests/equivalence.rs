//! Equivalence of the optimised CPU back end with the reference interpreter: every zoo model x
//! every optimisation setting x adversarial graphs, plus random graphs (property-style, many
//! seeds). The plan verifier runs after every pass inside `pipeline::compile`.
//!
//! Tolerances: the CPU back end in f64 must agree with the f64 interpreter to 1e-9 relative to
//! the output's largest magnitude; in f32 to 2e-4 of it (f32 rounding through two or three
//! chained products of width 64).

use pigeon::ir::Module;
use pigeon::passes::{pipeline, Options};
use pigeon::runtime::backend::Backend;
use pigeon::runtime::bind::bind_inputs;
use pigeon::runtime::cpu::{CpuBackend, Precision};
use pigeon::runtime::graph::{HeteroGraph, Relation};
use pigeon::runtime::interp::interpret;
use pigeon::runtime::layout::graph_stats;
use pigeon::runtime::weights::WeightStore;

/// The zoo with small sizes (so that the tests are fast) and the head counts to try.
fn zoo() -> Vec<(&'static str, Vec<(String, i64)>)> {
    let p = |kv: &[(&str, i64)]| kv.iter().map(|(k, v)| (k.to_string(), *v)).collect::<Vec<_>>();
    vec![
        ("rgcn", p(&[("in_dim", 6), ("out_dim", 5)])),
        ("rgcn2", p(&[("in_dim", 6), ("hidden", 4), ("classes", 3)])),
        ("rgat", p(&[("in_dim", 6), ("out_dim", 8), ("heads", 1)])),
        ("rgat", p(&[("in_dim", 6), ("out_dim", 8), ("heads", 2)])),
        ("hgt", p(&[("in_dim", 8), ("out_dim", 8), ("heads", 1)])),
        ("hgt", p(&[("in_dim", 8), ("out_dim", 8), ("heads", 2)])),
        ("rgat_heads", p(&[("in_dim", 6), ("out_dim", 8), ("heads", 1)])),
        ("rgat_heads", p(&[("in_dim", 6), ("out_dim", 8), ("heads", 4)])),
        ("simplehgn", p(&[("in_dim", 5), ("out_dim", 8), ("heads", 2), ("edge_dim", 4)])),
        ("rgin", p(&[("in_dim", 5), ("hidden", 6), ("out_dim", 3)])),
        ("rsage", p(&[("in_dim", 5), ("pool_dim", 6), ("out_dim", 3)])),
    ]
}

fn compile_zoo(name: &str, params: &[(String, i64)]) -> Module {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{name}.rgnn"));
    let src = pigeon::read_source(&path).expect("read");
    pigeon::compile(&src, None, params).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every combination of the three switches.
fn settings() -> Vec<Options> {
    let mut out = Vec::new();
    for bits in 0..8 {
        out.push(Options { reorder: bits & 1 != 0, compact: bits & 2 != 0, fuse: bits & 4 != 0 });
    }
    out
}

fn graph(
    name: &str,
    types: &[(&str, usize)],
    relations: usize,
    edges: &[(u32, u32, u32)],
) -> HeteroGraph {
    let mut offsets = vec![0];
    for (_, n) in types {
        offsets.push(offsets.last().copied().unwrap_or(0) + n);
    }
    HeteroGraph {
        name: name.into(),
        node_types: types.iter().map(|(t, _)| t.to_string()).collect(),
        type_offsets: offsets,
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

/// Graphs with the cases that break kernels: a relation with no edges (r3), isolated nodes,
/// self-loops, multi-edges, a node type without edges, a single edge, one relation only, and
/// parallel edges that make compaction pay off.
fn adversarial_graphs() -> Vec<HeteroGraph> {
    let main = [
        (0, 1, 0),
        (0, 1, 0),
        (2, 1, 1),
        (1, 1, 2),
        (3, 0, 0),
        (4, 0, 1),
        (5, 0, 2),
        (1, 2, 0),
        (4, 2, 0),
        (0, 4, 1),
        (5, 4, 1),
        (2, 5, 2),
        (3, 3, 1),
        (4, 5, 0),
        (0, 5, 0),
        (0, 2, 0),
    ];
    let parallel: Vec<(u32, u32, u32)> = (0..40).map(|i| (i % 3, 3 + i % 5, i % 2)).collect();
    vec![
        graph("adversarial", &[("a", 4), ("b", 3), ("c", 2)], 4, &main),
        graph("single-edge", &[("a", 3)], 2, &[(2, 0, 1)]),
        graph(
            "one-relation",
            &[("a", 3), ("b", 2)],
            1,
            &[(0, 1, 0), (1, 0, 0), (3, 4, 0), (4, 4, 0), (2, 1, 0)],
        ),
        graph("parallel-edges", &[("a", 3), ("b", 5)], 2, &parallel),
    ]
}

fn max_rel_err(got: &[f64], want: &[f64]) -> f64 {
    let scale = want.iter().fold(1e-30f64, |m, x| m.max(x.abs()));
    got.iter().zip(want).fold(0.0f64, |m, (g, w)| m.max((g - w).abs() / scale))
}

/// Compiles `module` for `g` with `options`, runs the plan on the CPU back end and the module
/// on the reference interpreter, and returns the worst relative error over the outputs.
fn compare(module: &Module, g: &HeteroGraph, options: &Options, precision: Precision) -> f64 {
    let stats = graph_stats(g);
    let compiled = pipeline::compile(module, &stats, options, None)
        .unwrap_or_else(|e| panic!("{}: {e}", module.name));
    let plan = compiled.plan.expect("the full pipeline yields a plan");
    let weights = WeightStore::init(module, g.num_relations(), g.num_node_types(), 17);
    let (inputs, _) = bind_inputs(module, g, 5).expect("bind");
    let want = interpret(module, g, &inputs, &weights).expect("reference");
    let got = CpuBackend::new(precision).execute(&plan, g, &inputs, &weights).unwrap_or_else(|e| {
        panic!(
            "{} on {} with {options:?}: {e}\n{}",
            module.name,
            g.name,
            pigeon::ir::plan_text::print_plan(&plan)
        )
    });
    assert_eq!(got.outputs.len(), want.len());
    let mut worst = 0.0f64;
    for ((gn, gt), (wn, wt)) in got.outputs.iter().zip(&want) {
        assert_eq!(gn, wn);
        assert_eq!((gt.rows, &gt.shape), (wt.rows, &wt.shape), "{gn}: shape");
        worst = worst.max(max_rel_err(&gt.data, &wt.data));
    }
    worst
}

#[test]
fn every_model_every_setting_every_adversarial_graph_in_f64() {
    let mut runs = 0;
    for (name, params) in zoo() {
        let module = compile_zoo(name, &params);
        for g in adversarial_graphs() {
            for options in settings() {
                let err = compare(&module, &g, &options, Precision::F64);
                assert!(
                    err <= 1e-9,
                    "{name} {params:?} on {} with {options:?}: relative error {err:e}",
                    g.name
                );
                runs += 1;
            }
        }
    }
    assert_eq!(runs, 11 * 4 * 8);
}

#[test]
fn every_model_in_f32_on_a_skewed_synthetic_graph() {
    let g =
        pigeon::runtime::load_graph("synthetic:nodes=300,edges=3000,relations=6,ntypes=3,seed=4")
            .expect("synthetic");
    for (name, params) in zoo() {
        let module = compile_zoo(name, &params);
        for options in [Options::default(), Options::none()] {
            let err = compare(&module, &g, &options, Precision::F32);
            assert!(err <= 2e-4, "{name} {params:?} f32 with {options:?}: relative error {err:e}");
        }
    }
}

#[test]
fn random_graphs_property() {
    // Property-style: many random small graphs of varied shape, all optimisations on and off.
    for seed in 0..24u64 {
        let nodes = 5 + (seed * 7) % 40;
        let edges = (seed * 13) % 120;
        let relations = 1 + seed % 5;
        let ntypes = 1 + seed % 3;
        let spec = format!("synthetic:nodes={nodes},edges={edges},relations={relations},ntypes={ntypes},seed={seed}");
        let g = pigeon::runtime::load_graph(&spec).expect("synthetic");
        let (name, params) = &zoo()[(seed as usize) % zoo().len()];
        let module = compile_zoo(name, params);
        for options in [Options::default(), Options::none()] {
            let err = compare(&module, &g, &options, Precision::F64);
            assert!(err <= 1e-9, "{name} on {spec} with {options:?}: relative error {err:e}");
        }
    }
}
