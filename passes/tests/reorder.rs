//! Tests of the linear-operator reordering pass: every zoo model and a few synthetic ones compute
//! the same outputs before and after (reference interpreter, 1e-9 relative) on synthetic and
//! adversarial graphs; the rules fire where expected; the chosen form depends on the graph's
//! sizes; saturation is bounded and reported.

use pigeon_frontend::{compile, SourceFile};
use pigeon_ir::{Domain, GraphStats, Module, Op};
use pigeon_passes::reorder_linear::{reorder_linear, ReorderLimits, ReorderReport, StopReason};
use pigeon_runtime::graph::Relation;
use pigeon_runtime::{bind_inputs, interpret, load_graph, HeteroGraph, WeightStore};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");

fn source(name: &str) -> SourceFile {
    let path = format!("{EXAMPLES}/{name}.rgnn");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    SourceFile { name: path, text }
}

fn build(src: &SourceFile, params: &[(&str, i64)]) -> Module {
    let params: Vec<(String, i64)> = params.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    compile(src, None, &params).unwrap_or_else(|d| panic!("{}: {d:?}", src.name))
}

fn model(text: &str) -> Module {
    build(&SourceFile { name: "test.rgnn".into(), text: text.into() }, &[])
}

fn stats(nodes: usize, edges: usize, relations: usize, node_types: usize) -> GraphStats {
    GraphStats {
        nodes,
        edges,
        relations,
        node_types,
        compact_src_rows: edges.min(nodes * relations),
        compact_dst_rows: edges.min(nodes * relations),
        max_in_degree: edges,
        typed_relations: false,
    }
}

/// Many edges, few relations, fewer nodes than edges: every rewrite of the table pays off.
fn big_edges() -> GraphStats {
    stats(10_000, 1_000_000, 4, 2)
}

/// Thousands of relations, a handful of edges, far more nodes than edges: none pays off.
fn few_edges() -> GraphStats {
    stats(1_000_000, 10, 5_000, 2)
}

/// An ACM-like graph (three edges per node, four relations) whose relations each connect one
/// node-type pair.
fn typed_acm_like() -> GraphStats {
    GraphStats { typed_relations: true, ..stats(10_000, 30_000, 4, 3) }
}

fn is_typed(g: &HeteroGraph) -> bool {
    g.relations.iter().all(|r| r.src_type.is_some() && r.dst_type.is_some())
}

fn reorder(m: &Module, s: &GraphStats) -> (Module, ReorderReport) {
    let (out, report) = reorder_linear(m, s, &ReorderLimits::default())
        .unwrap_or_else(|e| panic!("{}: {e}", m.name));
    if let Err(errs) = pigeon_ir::verify(&out) {
        panic!("{} does not verify: {errs:?}\n{}", m.name, pigeon_ir::print(&out));
    }
    (out, report)
}

/// Number of instructions whose operator matches `f` and whose result is in `domain`.
fn count(m: &Module, domain: Domain, f: impl Fn(&Op) -> bool) -> usize {
    m.insts.values().filter(|i| i.ty.domain == domain && f(&i.op)).count()
}

fn is_dot(op: &Op) -> bool {
    matches!(op, Op::Dot { .. })
}

fn is_linear(op: &Op) -> bool {
    matches!(op, Op::Linear { .. })
}

// ---------------------------------------------------------------------------------------------
// Graphs.

fn rel(name: &str, src: Option<u32>, dst: Option<u32>) -> Relation {
    Relation { name: name.into(), src_type: src, dst_type: dst }
}

fn graph(
    name: &str,
    type_offsets: Vec<usize>,
    rels: Vec<Relation>,
    edges: &[(u32, u32, u32)],
) -> HeteroGraph {
    let node_types = (0..type_offsets.len() - 1).map(|t| format!("t{t}")).collect();
    let base_relations = rels.len();
    HeteroGraph {
        name: name.into(),
        node_types,
        type_offsets,
        relations: rels,
        src: edges.iter().map(|e| e.0).collect(),
        dst: edges.iter().map(|e| e.1).collect(),
        rel: edges.iter().map(|e| e.2).collect(),
        base_relations,
        ..HeteroGraph::default()
    }
}

/// Small graphs that break careless kernels: an empty relation, isolated nodes, self-loops,
/// multi-edges, a single edge, a node type without edges, one relation only; plus random ones.
fn graphs() -> Vec<HeteroGraph> {
    let three = || vec![rel("a", None, None), rel("b", None, None), rel("c", None, None)];
    let mut gs = vec![
        // relation `c` has no edges, nodes 5 and 6 are isolated, node type t2 (7..9) has none,
        // a self-loop (2 -> 2) and a multi-edge (0 -> 1 twice in relation a).
        graph(
            "adversarial",
            vec![0, 4, 7, 9],
            three(),
            &[(0, 1, 0), (0, 1, 0), (2, 2, 1), (3, 0, 1), (1, 3, 0), (4, 2, 1), (2, 0, 0)],
        ),
        // one edge, one relation
        graph("single-edge", vec![0, 2], vec![rel("only", Some(0), Some(0))], &[(1, 0, 0)]),
        // one relation, typed endpoints, a node type without edges
        graph(
            "one-relation",
            vec![0, 3, 6],
            vec![rel("r", Some(0), Some(1))],
            &[(0, 3, 0), (1, 3, 0), (2, 4, 0), (0, 4, 0)],
        ),
        // relations that each connect one node-type pair (several sharing a source type), a
        // relation without edges, an isolated node of type t2
        graph(
            "typed",
            vec![0, 4, 7, 9],
            vec![
                rel("ab", Some(0), Some(1)),
                rel("ba", Some(1), Some(0)),
                rel("aa", Some(0), Some(0)),
                rel("bc", Some(1), Some(2)),
                rel("ca", Some(2), Some(0)),
            ],
            &[
                (0, 4, 0),
                (1, 4, 0),
                (3, 6, 0),
                (4, 0, 1),
                (5, 0, 1),
                (6, 2, 1),
                (0, 1, 2),
                (2, 2, 2),
                (1, 0, 2),
                (4, 7, 3),
                (5, 7, 3),
            ],
        ),
    ];
    for spec in [
        "synthetic:nodes=40,edges=200,relations=3,ntypes=2,seed=1",
        "synthetic:nodes=30,edges=90,relations=5,ntypes=3,seed=7",
    ] {
        gs.push(load_graph(spec).unwrap_or_else(|e| panic!("{spec}: {e}")));
    }
    gs
}

// ---------------------------------------------------------------------------------------------
// Equivalence under the reference interpreter.

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// `after` computes what `before` does on `g`: same inputs, and the weights of `before` looked
/// up by name for `after`.
fn assert_same(before: &Module, after: &Module, g: &HeteroGraph, what: &str) {
    let (r, t) = (g.num_relations(), g.num_node_types());
    let weights = WeightStore::init(before, r, t, 11);
    let mut moved = WeightStore::init(after, r, t, 999);
    for (id, w) in after.weights.iter() {
        let value =
            weights.by_name(&w.name).unwrap_or_else(|| panic!("{what}: lost weight {}", w.name));
        *moved.get_mut(id).expect("weight slot") = value.clone();
    }
    let (inputs, _) = bind_inputs(before, g, 5).unwrap_or_else(|e| panic!("{what}: {e}"));
    let want = interpret(before, g, &inputs, &weights).unwrap_or_else(|e| panic!("{what}: {e}"));
    let got = interpret(after, g, &inputs, &moved).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(want.len(), got.len(), "{what}: number of outputs");
    for ((n1, t1), (n2, t2)) in want.iter().zip(&got) {
        assert_eq!(n1, n2, "{what}");
        assert_eq!((t1.rows, &t1.shape), (t2.rows, &t2.shape), "{what}: output {n1}");
        for (i, (a, b)) in t1.data.iter().zip(&t2.data).enumerate() {
            assert!(close(*a, *b), "{what}: output {n1}[{i}]: {a} before, {b} after");
        }
    }
}

/// Reorders `m` for the sizes of each test graph and for two made-up extremes, and checks each
/// result on every test graph. Returns how many results differ from the input.
fn check_equivalent(m: &Module, what: &str) -> usize {
    let gs = graphs();
    let mut sizes: Vec<GraphStats> = gs.iter().map(pigeon_runtime::layout::graph_stats).collect();
    sizes.push(big_edges());
    sizes.push(typed_acm_like());
    sizes.push(few_edges());
    let mut changed = 0;
    for s in &sizes {
        let (out, report) = reorder(m, s);
        changed += usize::from(report.changed);
        // A module reordered for typed relations is only for graphs that have them.
        for g in gs.iter().filter(|g| !s.typed_relations || is_typed(g)) {
            assert_same(m, &out, g, &format!("{what} reordered for {s:?}, run on {}", g.name));
        }
    }
    changed
}

/// Every zoo model: the `.rgnn` files of `examples/`.
fn models() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let names = pigeon_frontend::model_files(std::path::Path::new(dir)).expect("examples/");
    assert!(names.len() >= 9, "the zoo shrank: {names:?}");
    names
}

#[test]
fn zoo_models_compute_the_same_after_reordering() {
    let mut changed = 0;
    for name in &models() {
        let src = source(name);
        let has_heads = src.text.contains("heads =");
        let settings: &[i64] = if has_heads { &[1, 2, 4] } else { &[0] };
        for &heads in settings {
            let params: Vec<(&str, i64)> = if has_heads { vec![("heads", heads)] } else { vec![] };
            let m = build(&src, &params);
            changed += check_equivalent(&m, &format!("{name} (heads {heads})"));
        }
    }
    // The attention models are rewritten at least on the many-edges sizes.
    assert!(changed >= 9, "only {changed} reordered modules");
}

// ---------------------------------------------------------------------------------------------
// The rules fire where expected.

#[test]
fn rgat_heads_destination_score_becomes_a_weight_product() {
    for heads in [1, 2, 4] {
        let m = build(&source("rgat_heads"), &[("heads", heads)]);
        assert_eq!(count(&m, Domain::Edge, is_dot), 2);
        let (out, report) = reorder(&m, &big_edges());
        let text = pigeon_ir::print(&out);
        assert!(report.changed, "{report}");
        assert!(report.fired.iter().any(|(n, _)| n == "dot-linear-to-weight"), "{report}");
        // One per-edge dot left (the source side, whose `z` the messages need anyway) ...
        assert_eq!(count(&out, Domain::Edge, is_dot), 1, "{text}");
        // ... and the destination side is `dst.h @ M` with M = dot(W, view(a_dst)) per relation.
        assert_eq!(count(&out, Domain::Relation, is_dot), 1, "{text}");
        let h = heads as usize;
        let m_ty = format!("relation [64, {h}] f32");
        assert!(text.contains(&m_ty), "{text}");
        let narrow = out.insts.values().filter(|i| {
            is_linear(&i.op) && i.ty.domain == Domain::Edge && i.ty.shape.dims() == [h]
        });
        assert_eq!(narrow.count(), 1, "{text}");
        assert_same(&m, &out, &graphs()[0], "rgat_heads");
    }
}

#[test]
fn pyg_rgat_query_becomes_a_weight_product() {
    for heads in [1, 2] {
        let m = build(&source("rgat"), &[("heads", heads)]);
        let (out, report) = reorder(&m, &big_edges());
        let text = pigeon_ir::print(&out);
        assert!(report.fired.iter().any(|(n, _)| n == "linear-chain"), "{report}");
        // `gi = dst.h @ W` (edge [64]) is gone; `gi @ q` is `dst.h @ (W @ q)`.
        let wide = |m: &Module| {
            m.insts
                .values()
                .filter(|i| {
                    is_linear(&i.op) && i.ty.domain == Domain::Edge && i.ty.shape.dims() == [64]
                })
                .count()
        };
        assert_eq!(wide(&m), 2);
        assert_eq!(wide(&out), 1, "{text}");
        let product = format!("relation [64, {heads}] f32");
        assert_eq!(count(&out, Domain::Relation, is_linear), 1, "{text}");
        assert!(text.contains(&product), "{text}");
        // `gj @ k` stays: `gj` is needed by the messages, so `src.h @ (W @ k)` would cost more.
        assert_eq!(count(&out, Domain::Edge, is_linear), 3, "{text}");
    }
}

#[test]
fn hgt_key_and_value_weights_fold_into_relation_weights() {
    let m = build(&source("hgt"), &[("heads", 1)]);
    let node_linears = |m: &Module| count(m, Domain::Node, is_linear);
    assert_eq!(node_linears(&m), 4, "K, Q, V and the output projection");
    // Untyped relations: `Wk[src.ntype] @ k_rel[relation]` has no per-relation form.
    let untyped_stats = GraphStats { typed_relations: false, ..typed_acm_like() };
    let (untyped, _) = reorder(&m, &untyped_stats);
    assert_eq!(node_linears(&untyped), 4, "{}", pigeon_ir::print(&untyped));
    let (out, report) = reorder(&m, &typed_acm_like());
    let text = pigeon_ir::print(&out);
    for rule in ["gather-distribute", "linear-gather-swap", "linear-chain", "slice-linear-hoist"] {
        assert!(report.fired.iter().any(|(n, _)| n == rule), "{rule} did not fire: {report}");
    }
    // K and V are no longer computed per node: the messages read `src.h @ (Wk @ k_rel)[r]`.
    assert_eq!(node_linears(&out), 2, "{report}\n{text}");
    assert!(text.contains("slice v") && text.contains("by src.ntype to relation"), "{text}");
    assert_eq!(count(&out, Domain::Relation, is_linear), 4, "{text}");
    let typed = graphs().into_iter().filter(is_typed).filter(|g| g.num_relations() > 1);
    let mut ran = 0;
    for g in typed {
        assert_same(&m, &out, &g, &format!("hgt folded, on {}", g.name));
        ran += 1;
    }
    assert!(ran >= 1, "no typed test graph with several relations");
}

const CHAIN_WITH_BIAS: &str = "
model chain(in_dim = 8, mid = 32, out_dim = 2) {
    input  h: node[in_dim];
    weight W[relation]: [in_dim, mid];
    weight b[relation]: [mid];
    weight V[relation]: [mid, out_dim];
    weight S: [in_dim, mid];
    weight c: [mid];
    edge y = (src.h @ W[relation] + b[relation]) @ V[relation];
    edge z = (dst.h @ S + c) @ V[relation];
    node out = sum(y + z);
    output out;
}";

#[test]
fn chains_with_biases_become_weight_products() {
    let m = model(CHAIN_WITH_BIAS);
    let (out, report) = reorder(&m, &big_edges());
    let text = pigeon_ir::print(&out);
    for rule in ["linear-chain", "linear-distribute", "slice-linear-hoist"] {
        assert!(report.fired.iter().any(|(n, _)| n == rule), "{rule} did not fire: {report}");
    }
    // No 32-wide value is computed per edge any more.
    let wide =
        out.insts.values().filter(|i| i.ty.domain == Domain::Edge && i.ty.shape.dims() == [32]);
    assert_eq!(wide.count(), 0, "{text}");
    assert!(count(&out, Domain::Relation, is_linear) >= 3, "{text}");
    check_equivalent(&m, "chain with biases");
}

const TYPED: &str = "
model typed(in_dim = 16, out_dim = 8) {
    input  h: node[in_dim];
    weight K[ntype]: [in_dim, out_dim];
    weight a[relation]: [out_dim];
    edge s = dot(src.h @ K[src.ntype], a[relation]);
    edge m = src.h @ K[src.ntype];
    node out = sum(softmax(s) * m);
    output out;
}";

#[test]
fn node_type_weights_move_to_the_nodes() {
    let m = model(TYPED);
    let (out, report) = reorder(&m, &stats(1_000, 100_000, 3, 2));
    let text = pigeon_ir::print(&out);
    assert!(report.fired.iter().any(|(n, _)| n == "gather-linear-swap"), "{report}");
    assert_eq!(count(&out, Domain::Node, is_linear), 1, "{text}");
    assert_eq!(count(&out, Domain::Edge, is_linear), 0, "{text}");
    check_equivalent(&m, "typed");
}

// ---------------------------------------------------------------------------------------------
// The chosen form depends on the graph.

const SHARED_PROJECTION: &str = "
model proj(in_dim = 32, out_dim = 32) {
    input  h: node[in_dim];
    weight W: [in_dim, out_dim];
    node out = sum(src.h @ W);
    output out;
}";

#[test]
fn gather_linear_swap_depends_on_nodes_versus_edges() {
    let m = model(SHARED_PROJECTION);
    // Fewer nodes than edges: project once per node, then gather.
    let (few_nodes, r1) = reorder(&m, &stats(100, 10_000, 1, 1));
    assert!(r1.changed, "{r1}");
    assert_eq!(count(&few_nodes, Domain::Node, is_linear), 1, "{}", pigeon_ir::print(&few_nodes));
    assert_eq!(count(&few_nodes, Domain::Edge, is_linear), 0);
    // Far more nodes than edges: projecting every node would be wasted work.
    let (many_nodes, r2) = reorder(&m, &stats(100_000, 50, 1, 1));
    assert!(!r2.changed, "{r2}");
    assert_eq!(many_nodes, m);
    // Both are the same function.
    for g in graphs() {
        assert_same(&m, &few_nodes, &g, "proj (few nodes)");
    }
    // The swap also runs backwards: a per-node product that only feeds one gather moves to the
    // edges when nodes far outnumber edges.
    let per_node = model(
        "model back(d = 32) { input h: node[d]; weight W: [d, d]; node p = h @ W; \
         node out = sum(src.p); output out; }",
    );
    let (moved, r3) = reorder(&per_node, &stats(100_000, 50, 1, 1));
    assert!(r3.fired.iter().any(|(n, _)| n == "linear-gather-swap"), "{r3}");
    assert_eq!(count(&moved, Domain::Edge, is_linear), 1, "{}", pigeon_ir::print(&moved));
    assert_same(&per_node, &moved, &graphs()[0], "back");
}

#[test]
fn weight_products_depend_on_relations_versus_edges() {
    let m = build(&source("rgat"), &[("heads", 1)]);
    // Few relations, many edges: `gi @ q` becomes `dst.h @ (W @ q)`.
    let (few_rel, r1) = reorder(&m, &stats(10_000, 1_000_000, 4, 1));
    assert!(r1.changed && r1.chosen_cost < r1.input_cost, "{r1}");
    assert_eq!(count(&few_rel, Domain::Relation, is_linear), 1);
    // Thousands of relations and a handful of edges: the weight product would cost more than
    // the edge-wise products it replaces.
    let (many_rel, r2) = reorder(&m, &stats(20, 10, 5_000, 1));
    assert!(!r2.changed, "{r2}");
    assert_eq!(count(&many_rel, Domain::Relation, is_linear), 0);
    assert_eq!(many_rel, m);
}

// ---------------------------------------------------------------------------------------------
// Bounded saturation.

#[test]
fn saturation_is_bounded_and_reported() {
    let m = model(CHAIN_WITH_BIAS);
    let (_, full) = reorder(&m, &big_edges());
    assert_eq!(full.stop_reason, StopReason::Saturated, "{full}");
    assert!(full.iterations >= 2 && full.egraph_nodes > m.insts.len(), "{full}");
    let shown = full.to_string();
    assert!(shown.contains("saturated") && shown.contains("e-classes"), "{shown}");

    let one = ReorderLimits { iterations: 1, ..ReorderLimits::default() };
    let (out, r) = reorder_linear(&m, &big_edges(), &one).expect("reorder");
    assert_eq!(r.stop_reason, StopReason::IterationLimit(1), "{r}");
    assert_eq!(r.iterations, 1);
    assert!(pigeon_ir::verify(&out).is_ok());
    assert_same(&m, &out, &graphs()[0], "one iteration");

    let tiny = ReorderLimits { nodes: 10, ..ReorderLimits::default() };
    let (out, r) = reorder_linear(&m, &big_edges(), &tiny).expect("reorder");
    assert!(matches!(r.stop_reason, StopReason::NodeLimit(_)), "{r}");
    assert_same(&m, &out, &graphs()[0], "node limit");
}
