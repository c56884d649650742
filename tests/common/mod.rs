//! Shared by the equivalence tests of every back end: the zoo at small sizes, the optimisation
//! settings, adversarial graphs, and the comparison with the reference interpreter.

#![allow(dead_code)]

pub mod cuda;

use pigeon::ir::Module;
use pigeon::passes::{pipeline, Options};
use pigeon::runtime::backend::Backend;
use pigeon::runtime::bind::bind_inputs;
use pigeon::runtime::graph::{HeteroGraph, Relation};
use pigeon::runtime::interp::interpret;
use pigeon::runtime::layout::graph_stats;
use pigeon::runtime::rng::Rng;
use pigeon::runtime::tensor::Tensor;
use pigeon::runtime::weights::WeightStore;

/// The zoo with small sizes (so that the tests are fast) and the head counts to try.
pub fn zoo() -> Vec<(&'static str, Vec<(String, i64)>)> {
    let p = |kv: &[(&str, i64)]| kv.iter().map(|(k, v)| (k.to_string(), *v)).collect::<Vec<_>>();
    vec![
        ("rgcn", p(&[("in_dim", 6), ("out_dim", 5)])),
        ("rgcn2", p(&[("in_dim", 6), ("hidden", 4), ("classes", 3)])),
        ("rgcn_entity", p(&[("hidden", 4), ("classes", 3)])),
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

pub fn compile_zoo(name: &str, params: &[(String, i64)]) -> Module {
    // The build path is baked in; test binaries carried to another machine run from a checkout
    // root instead (scripts/gpu-check).
    let baked = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let dir = if baked.is_dir() { baked } else { std::path::PathBuf::from("examples") };
    let path = dir.join(format!("{name}.rgnn"));
    let src = pigeon::read_source(&path).expect("read");
    pigeon::compile(&src, None, params).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every combination of the three switches.
pub fn settings() -> Vec<Options> {
    let mut out = Vec::new();
    for bits in 0..8 {
        out.push(Options { reorder: bits & 1 != 0, compact: bits & 2 != 0, fuse: bits & 4 != 0 });
    }
    out
}

pub fn graph(
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
pub fn adversarial_graphs() -> Vec<HeteroGraph> {
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

pub fn max_rel_err(got: &[f64], want: &[f64]) -> f64 {
    let scale = want.iter().fold(1e-30f64, |m, x| m.max(x.abs()));
    got.iter().zip(want).fold(0.0f64, |m, (g, w)| m.max((g - w).abs() / scale))
}

/// Compiles `module` for `g` with `options`, runs the plan on `backend` and the module on the
/// reference interpreter, and returns the worst relative error over the outputs.
pub fn compare(module: &Module, g: &HeteroGraph, options: &Options, backend: &dyn Backend) -> f64 {
    let stats = graph_stats(g);
    let compiled = pipeline::compile(module, &stats, options, None)
        .unwrap_or_else(|e| panic!("{}: {e}", module.name));
    let plan = compiled.plan.expect("the full pipeline yields a plan");
    let weights = WeightStore::init(module, g.num_relations(), g.num_node_types(), 17);
    let (inputs, _) = bind_inputs(module, g, 5).expect("bind");
    let want = interpret(module, g, &inputs, &weights).expect("reference");
    let got = backend.execute(&plan, g, &inputs, &weights).unwrap_or_else(|e| {
        panic!(
            "{} on {} with {options:?} ({}): {e}\n{}",
            module.name,
            g.name,
            backend.name(),
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

/// `module` differentiated with respect to its weights and every input, and its
/// forward/backward split.
pub fn differentiated(
    module: &Module,
) -> (pigeon::passes::autodiff::Differentiated, pigeon::passes::autodiff::Split) {
    use pigeon::passes::autodiff::{differentiate, split};
    let names: Vec<String> = module.inputs().into_iter().map(|d| d.name).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let d = differentiate(module, &refs).unwrap_or_else(|e| panic!("{}: {e}", module.name));
    let s = split(&d).unwrap_or_else(|e| panic!("{}: {e}", module.name));
    (d, s)
}

/// A model on a graph for gradient tests: weights (perturbed so that zero biases and unit scales
/// cannot hide a missing or misplaced term), bound inputs and a random seed per output. Test
/// files add the methods they need (`impl Case` in the test crate).
pub struct Case {
    pub module: Module,
    pub graph: HeteroGraph,
    pub inputs: Vec<(String, Tensor)>,
    pub weights: WeightStore,
    pub seeds: Vec<(String, Tensor)>,
}

impl Case {
    pub fn new(module: Module, graph: HeteroGraph, seed: u64) -> Self {
        let mut weights =
            WeightStore::init(&module, graph.num_relations(), graph.num_node_types(), seed);
        weights.perturb(0.5, seed + 1);
        let (inputs, _) = bind_inputs(&module, &graph, seed + 2).expect("bind");
        let outs = interpret(&module, &graph, &inputs, &weights).expect("forward");
        let mut rng = Rng::new(seed + 3);
        let seeds = outs
            .iter()
            .map(|(name, t)| {
                let data = (0..t.data.len()).map(|_| rng.normal()).collect();
                (name.clone(), Tensor { rows: t.rows, shape: t.shape.clone(), data })
            })
            .collect();
        Case { module, graph, inputs, weights, seeds }
    }
}
