//! Compact materialization: every zoo model computes the same function after the pass (checked
//! with the reference interpreter on adversarial graphs), the legality rule holds on the IR, and
//! row counts and profitability decisions match counts made by hand.

use pigeon_frontend::SourceFile;
use pigeon_ir::{Domain, Endpoint, GraphStats, Index, InputKind, Module, Op, Select};
use pigeon_passes::materialize_compact::{materialize_compact, CompactReport};
use pigeon_runtime::bind::bind_inputs;
use pigeon_runtime::graph::{HeteroGraph, Relation};
use pigeon_runtime::interp::interpret;
use pigeon_runtime::weights::WeightStore;
use std::collections::HashSet;

// ---- graphs ----

/// A graph with `types[t]` nodes of type `t`, `relations` relations and edges `(src, dst, rel)`.
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

/// 4 source nodes x 2 relations, each (source, relation) pair sending 3 edges (two of them
/// parallel, to the same destination) to 2 destinations no other pair uses: 24 edges, 8 unique
/// (source, relation) pairs and 16 unique (destination, relation) pairs.
fn parallel_graph() -> HeteroGraph {
    let mut edges = Vec::new();
    for s in 0..4u32 {
        for r in 0..2u32 {
            let d = 4 + 2 * (2 * s + r);
            edges.extend([(s, d, r), (s, d, r), (s, d + 1, r)]);
        }
    }
    graph("parallel", &[20], 2, &edges)
}

/// 4 source nodes x 2 relations x 3 edges, every edge to its own destination: 24 edges, 8 unique
/// (source, relation) pairs, 24 unique (destination, relation) pairs.
fn fan_out_graph() -> HeteroGraph {
    let mut edges = Vec::new();
    for s in 0..4u32 {
        for r in 0..2u32 {
            for k in 0..3u32 {
                edges.push((s, 4 + 6 * s + 3 * r + k, r));
            }
        }
    }
    graph("fan-out", &[28], 2, &edges)
}

/// Every (source, relation) and (destination, relation) pair occurs once: a ring per relation.
fn unique_pairs_graph() -> HeteroGraph {
    let mut edges = Vec::new();
    for r in 0..2u32 {
        for s in 0..6u32 {
            edges.push((s, (s + 1 + r) % 6, r));
        }
    }
    graph("unique", &[3, 3], 2, &edges)
}

/// The adversarial graphs every model is checked on.
fn adversarial_graphs() -> Vec<HeteroGraph> {
    let zoo = [
        (0, 1, 0),
        (0, 1, 0), // multi-edge
        (2, 1, 1),
        (1, 1, 2), // self-loop
        (3, 0, 0),
        (4, 0, 1),
        (5, 0, 2),
        (1, 2, 0),
        (4, 2, 0),
        (0, 4, 1),
        (5, 4, 1),
        (2, 5, 2),
        (3, 3, 1), // self-loop
        (4, 5, 0),
    ]; // node 6 isolated
    vec![
        graph("mixed", &[4, 3], 3, &zoo),
        // relation 1 has no edge; node 4 is isolated
        graph("empty-relation", &[5], 3, &[(0, 1, 0), (0, 1, 0), (1, 2, 2), (2, 2, 2), (3, 0, 0)]),
        graph("single-edge", &[3], 2, &[(0, 1, 1)]),
        // node type 2 (nodes 5 and 6) has no edge at all
        graph(
            "untouched-type",
            &[3, 2, 2],
            2,
            &[(0, 3, 0), (3, 0, 1), (1, 4, 0), (1, 4, 0), (2, 2, 1)],
        ),
        graph("one-relation", &[4], 1, &[(0, 1, 0), (0, 1, 0), (0, 2, 0), (1, 1, 0), (3, 2, 0)]),
        graph("no-edges", &[3], 2, &[]),
        parallel_graph(),
    ]
}

/// Graph sizes counted directly from the edge lists.
fn stats_of(g: &HeteroGraph) -> GraphStats {
    let pairs = |nodes: &[u32]| nodes.iter().zip(&g.rel).collect::<HashSet<_>>().len();
    let mut indeg = vec![0usize; g.num_nodes()];
    for &d in &g.dst {
        indeg[d as usize] += 1;
    }
    GraphStats {
        nodes: g.num_nodes(),
        edges: g.num_edges(),
        relations: g.num_relations(),
        node_types: g.num_node_types(),
        compact_src_rows: pairs(&g.src),
        compact_dst_rows: pairs(&g.dst),
        max_in_degree: indeg.into_iter().max().unwrap_or(0),
        typed_relations: g.relations.iter().all(|r| r.src_type.is_some() && r.dst_type.is_some()),
    }
}

/// Sizes that make compaction look profitable on both endpoints, whatever the graph: the
/// equivalence tests use them so that the rewritten path is what runs on every graph.
fn forced() -> GraphStats {
    GraphStats { edges: 100, compact_src_rows: 1, compact_dst_rows: 1, ..GraphStats::default() }
}

// ---- models ----

fn compile_text(name: &str, text: &str, params: &[(String, i64)]) -> Module {
    let src = SourceFile { name: name.into(), text: text.into() };
    pigeon_frontend::compile(&src, None, params).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

/// Every zoo model at small sizes, with heads 1 and 2 where the model has `heads`.
fn zoo() -> Vec<Module> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rgnn"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "the zoo has at least 8 models, found {}", files.len());
    let small = [
        ("in_dim", 8),
        ("out_dim", 8),
        ("hidden", 6),
        ("classes", 3),
        ("pool_dim", 5),
        ("edge_dim", 4),
    ];
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read model");
        let name = f.display().to_string();
        let default = compile_text(&name, &text, &[]);
        let has = |k: &str| default.params.iter().any(|(p, _)| p == k);
        let base: Vec<(String, i64)> =
            small.iter().filter(|(k, _)| has(k)).map(|(k, v)| (k.to_string(), *v)).collect();
        let heads: &[i64] = if has("heads") { &[1, 2] } else { &[0] };
        for &h in heads {
            let mut params = base.clone();
            if h > 0 {
                params.push(("heads".into(), h));
            }
            out.push(compile_text(&name, &text, &params));
        }
    }
    out
}

// ---- checks ----

/// `after` computes what `before` computes on `g`, within 1e-9 relative, with weights made
/// for `before`.
fn assert_same(before: &Module, after: &Module, g: &HeteroGraph) {
    let mut weights = WeightStore::init(before, g.num_relations(), g.num_node_types(), 7);
    weights.perturb(0.3, 5);
    let (inputs, _) = bind_inputs(before, g, 3).expect("bind inputs");
    let want = interpret(before, g, &inputs, &weights).expect("interpret original");
    let got = interpret(after, g, &inputs, &weights).unwrap_or_else(|e| {
        panic!("{} on {}: {e}\n{}", after.name, g.name, pigeon_ir::print(after))
    });
    assert_eq!(want.len(), got.len());
    for ((n1, a), (n2, b)) in want.iter().zip(&got) {
        assert_eq!(n1, n2);
        assert_eq!((a.rows, &a.shape), (b.rows, &b.shape), "{} output {n1}", before.name);
        for (i, (x, y)) in a.data.iter().zip(&b.data).enumerate() {
            assert!(
                (x - y).abs() <= 1e-9 * (1.0 + x.abs().max(y.abs())),
                "{} on {}: output {n1}[{i}]: original {x}, compacted {y}",
                before.name,
                g.name
            );
        }
    }
}

/// The legality rule on the output IR: compact rows of endpoint `ep` read only their own node
/// (`gather by node.ep`), weights, shared values and compact values of the same endpoint, and
/// select weights only by relation, shared, or their own endpoint's type. The only compact
/// inputs are the model's own learned tables (`weight E[relation]: node[d]`).
fn assert_legal(m: &Module) {
    for (v, inst) in m.insts.iter() {
        let Domain::Compact(ep) = inst.ty.domain else { continue };
        let other = match ep {
            Endpoint::Src => Select::DstType,
            Endpoint::Dst => Select::SrcType,
        };
        match &inst.op {
            Op::Gather { index, .. } => assert_eq!(*index, Index::CompactNode(ep), "{v}"),
            Op::Slice { by, .. } | Op::Linear { by, .. } => assert_ne!(*by, other, "{v}"),
            Op::Input { kind: InputKind::Table(_), .. } => {}
            Op::Input { .. } | Op::EdgeSoftmax { .. } | Op::Aggregate { .. } => {
                panic!("{v} is an input, softmax or aggregation on compact rows")
            }
            _ => {}
        }
        for x in inst.op.operands() {
            let d = m.ty(x).domain;
            let gathered = matches!(inst.op, Op::Gather { .. }) && d == Domain::Node;
            assert!(
                gathered || d == inst.ty.domain || d.is_weight_like(),
                "{v} on compact.{ep} reads {x}, a {d} value"
            );
        }
    }
}

fn count(m: &Module, f: impl Fn(&pigeon_ir::Inst) -> bool) -> usize {
    m.insts.values().filter(|i| f(i)).count()
}

fn transform(m: &Module, stats: &GraphStats) -> (Module, CompactReport) {
    let (out, report) = materialize_compact(m, stats);
    if let Err(errs) = pigeon_ir::verify(&out) {
        panic!("{} does not verify: {errs:?}\n{}", m.name, pigeon_ir::print(&out));
    }
    assert_eq!(out.weights, m.weights, "weights are kept as they are");
    (out, report)
}

// ---- tests ----

#[test]
fn zoo_models_keep_their_function_on_adversarial_graphs() {
    let graphs = adversarial_graphs();
    for m in zoo() {
        let (out, report) = transform(&m, &forced());
        assert!(
            !report.compacted.is_empty(),
            "{}: every zoo model has an endpoint-pure linear",
            m.name
        );
        assert!(count(&out, |i| matches!(i.ty.domain, Domain::Compact(_))) > 0);
        assert_legal(&out);
        for g in &graphs {
            assert_same(&m, &out, g);
            // And with the sizes of the graph itself (compacting or not, as it decides).
            let (real, _) = transform(&m, &stats_of(g));
            assert_legal(&real);
            assert_same(&m, &real, g);
        }
    }
}

#[test]
fn rgcn_compacts_the_source_linear_but_not_the_rel_norm_product() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/rgcn.rgnn"))
            .expect("read rgcn");
    let params = [("in_dim".to_string(), 5), ("out_dim".to_string(), 3)];
    let m = compile_text("rgcn", &text, &params);
    let g = parallel_graph();
    let stats = stats_of(&g);
    // Counted by hand from `parallel_graph`: 4 sources x 2 relations x 3 edges.
    assert_eq!((stats.edges, stats.compact_src_rows, stats.compact_dst_rows), (24, 8, 16));
    let (out, report) = transform(&m, &stats);
    assert_eq!(report.compacted.len(), 1, "{report}");
    let c = &report.compacted[0];
    assert!(matches!(m.insts[c.value].op, Op::Linear { by: Select::Relation, .. }));
    assert_eq!(
        (c.endpoint, c.edge_rows, c.compact_rows, c.rows_saved()),
        (Endpoint::Src, 24, 8, 16)
    );
    assert_eq!(report.rows_saved(), 16);
    assert!(report.declined.is_empty());
    // gather by node.src and the linear, on compact rows.
    assert_eq!(report.compact_insts, 2);
    assert_eq!(out.ty(c.compact).domain, Domain::Compact(Endpoint::Src));
    assert_eq!(
        out.insts[c.result].op,
        Op::Gather { x: c.compact, index: Index::EdgeToCompact(Endpoint::Src) }
    );
    // The product with the per-edge `rel_norm` stays on edges and reads the gathered result.
    let muls: Vec<_> = out.insts.values().filter(|i| matches!(i.op, Op::Binary { .. })).collect();
    let mul = muls.iter().find(|i| i.name.as_deref() == Some("msg")).expect("msg");
    assert_eq!(mul.ty.domain, Domain::Edge);
    let ops = mul.op.operands();
    assert!(ops.contains(&c.result), "msg reads the compacted value back");
    assert!(ops
        .iter()
        .any(|&x| matches!(&out.insts[x].op, Op::Input { name, .. } if name == "rel_norm")));
    // 12 instructions - the edge gather - the edge linear + 2 compact + 1 read-back.
    assert_eq!((m.insts.len(), out.insts.len()), (12, 13));
    assert_legal(&out);
    assert_same(&m, &out, &g);
}

fn rgat_heads(heads: i64) -> Module {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/rgat_heads.rgnn"
    ))
    .expect("read rgat_heads");
    let params =
        [("in_dim".to_string(), 6), ("out_dim".to_string(), 4), ("heads".to_string(), heads)];
    compile_text("rgat_heads", &text, &params)
}

#[test]
fn rgat_heads_compacts_source_side_and_declines_unique_destinations() {
    for heads in [1, 2] {
        let m = rgat_heads(heads);
        let g = fan_out_graph();
        let stats = stats_of(&g);
        assert_eq!((stats.edges, stats.compact_src_rows, stats.compact_dst_rows), (24, 8, 24));
        let (out, report) = transform(&m, &stats);
        // z (read by the message) and dot(z, a_src) (read by the score's sum) on compact.src.
        let names: Vec<_> = report.compacted.iter().map(|c| (c.name.clone(), c.endpoint)).collect();
        assert_eq!(names.len(), 2, "{report}");
        assert!(names.contains(&(Some("z".into()), Endpoint::Src)), "{report}");
        assert!(report.compacted.iter().all(|c| (c.edge_rows, c.compact_rows) == (24, 8)));
        assert!(report.compacted.iter().any(|c| matches!(m.insts[c.value].op, Op::Dot { .. })));
        assert_eq!(report.rows_saved(), 2 * 16);
        // gather, linear, slice a_src, dot: z's copy is shared by both roots.
        assert_eq!(report.compact_insts, 4, "{report}");
        // dot(dst.h @ W, a_dst) is legal on compact.dst but saves nothing here.
        assert_eq!(report.declined.len(), 1, "{report}");
        assert_eq!(report.declined[0].endpoint, Endpoint::Dst);
        assert_eq!((report.declined[0].edge_rows, report.declined[0].compact_rows), (24, 24));
        // The softmax and the score, which mix both endpoints, stay on edges.
        assert!(out
            .insts
            .values()
            .all(|i| !matches!(i.op, Op::EdgeSoftmax { .. }) || i.ty.domain == Domain::Edge));
        assert_eq!(count(&out, |i| i.ty.domain == Domain::Compact(Endpoint::Dst)), 0);
        assert_legal(&out);
        assert_same(&m, &out, &g);
        // With multi-edges into the same destinations, both sides pay.
        let g = parallel_graph();
        let (out, report) = transform(&m, &stats_of(&g));
        assert_eq!(report.compacted.len(), 3, "{report}");
        let dst = report.compacted.iter().find(|c| c.endpoint == Endpoint::Dst).expect("dst root");
        assert_eq!((dst.edge_rows, dst.compact_rows), (24, 16));
        assert_same(&m, &out, &g);
    }
}

#[test]
fn unique_pairs_leave_the_module_alone() {
    let g = unique_pairs_graph();
    let stats = stats_of(&g);
    assert_eq!((stats.edges, stats.compact_src_rows, stats.compact_dst_rows), (12, 12, 12));
    for m in zoo() {
        let (out, report) = transform(&m, &stats);
        assert_eq!(out, m, "{}", m.name);
        assert!(report.compacted.is_empty());
        assert!(!report.declined.is_empty(), "{}: the candidates are listed as declined", m.name);
        assert!(report.declined.iter().all(|d| d.edge_rows == 12 && d.compact_rows == 12));
    }
}

#[test]
fn margin_is_twenty_percent_of_the_edges() {
    let m = rgat_heads(1);
    let at = |c: usize| GraphStats {
        edges: 100,
        compact_src_rows: c,
        compact_dst_rows: 100,
        ..GraphStats::default()
    };
    assert_eq!(transform(&m, &at(80)).1.compacted.len(), 2);
    assert_eq!(transform(&m, &at(81)).1.compacted.len(), 0);
    let empty = GraphStats::default();
    assert!(transform(&m, &empty).1.compacted.is_empty(), "no edges, nothing to save");
}

const LEGALITY: &str = r#"
model mixed(d = 4) {
    input  h: node[d];
    input  norm: edge;
    weight W[relation]: [d, d];
    weight K[ntype]: [d, d];
    edge both   = dot(src.h @ W[relation], dst.h @ W[relation]);
    edge normed = (norm * src.h) @ W[relation];
    edge typed  = (src.h @ K[src.ntype]) @ W[relation];
    edge crossed = src.h @ K[dst.ntype];
    edge att    = softmax(dot(src.h, src.h));
    node out    = sum(both * normed) + sum(typed) + sum(crossed) + sum(att * src.h);
    output out;
}
"#;

#[test]
fn legality_rule_on_hand_written_values() {
    let m = compile_text("legality", LEGALITY, &[]);
    let (out, report) = transform(&m, &forced());
    let roots: Vec<_> = report
        .compacted
        .iter()
        .map(|c| (c.name.clone(), c.endpoint, m.insts[c.value].op.clone()))
        .collect();
    let named = |n: &str| roots.iter().filter(|r| r.0.as_deref() == Some(n)).count();
    // `both` mixes src and dst, `normed` reads a per-edge input, `crossed` selects by the other
    // endpoint's type, `att` is a softmax: none is compacted.
    for n in ["both", "normed", "crossed", "att"] {
        assert_eq!(named(n), 0, "{n} must stay on edges: {report}");
    }
    // `typed` (src.ntype then relation) is compacted as one subtree on compact.src.
    assert_eq!(named("typed"), 1, "{report}");
    // The two linears under `both`, one per endpoint, and the dot under `att` are roots.
    let linears = |ep| {
        roots
            .iter()
            .filter(|r| r.1 == ep && r.0.is_none() && matches!(r.2, Op::Linear { .. }))
            .count()
    };
    assert_eq!((linears(Endpoint::Src), linears(Endpoint::Dst)), (1, 1), "{report}");
    assert_eq!(roots.iter().filter(|r| matches!(r.2, Op::Dot { .. })).count(), 1, "{report}");
    assert_eq!(roots.len(), 4, "{report}");
    for n in ["both", "normed", "crossed", "att"] {
        let inst = out.insts.values().find(|i| i.name.as_deref() == Some(n)).expect(n);
        assert_eq!(inst.ty.domain, Domain::Edge, "{n}");
    }
    assert_legal(&out);
    for g in adversarial_graphs() {
        assert_same(&m, &out, &g);
    }
}

#[test]
fn a_second_run_changes_nothing() {
    for m in zoo() {
        let (once, _) = transform(&m, &forced());
        let (twice, report) = transform(&once, &forced());
        assert_eq!(twice, once, "{}", m.name);
        assert!(report.compacted.is_empty() && report.declined.is_empty());
    }
}

#[test]
fn report_prints_each_decision() {
    let m = rgat_heads(1);
    let (_, report) = transform(&m, &stats_of(&fan_out_graph()));
    let text = report.to_string();
    let head = "compact materialization: 2 value(s) compacted, 4 instruction(s) on compact rows, \
                32 rows saved";
    assert!(text.starts_with(head), "{text}");
    assert!(
        text.contains("(z) on compact.src: 24 edge rows -> 8 compact rows (16 saved)"),
        "{text}"
    );
    assert!(
        text.contains(
            "left on edges: compact.dst would have 24 rows for 24 edges (saves less than 20%)"
        ),
        "{text}"
    );
}
