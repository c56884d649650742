//! Tests of fusion, lowering to kernel plans, schedules and buffer reuse: every zoo model (heads
//! 1 and 2), fused and unfused, verifies as a plan, has the kernels and buffers worked out by
//! hand below, and computes the reference interpreter's result (within 1e-9 relative, in f64)
//! on small adversarial graphs, run by a tiny plan executor written from the plan semantics
//! (`lower/exec.rs`).

#[path = "lower/exec.rs"]
mod exec;

use pigeon_ir::inter::{Module, Op, Select};
use pigeon_ir::plan::{
    BufferKind, Epilogue, Kernel, Plan, RowIndex, RowSpace, Schedule, StmtOp, StoreMode,
};
use pigeon_ir::{Endpoint, GraphStats};
use pigeon_passes::fuse::fuse;
use pigeon_passes::lower_plan::lower_to_plan;
use pigeon_passes::schedule::{assign_slots, choose_schedules, to_edge_parallel};
use pigeon_runtime::graph::Relation;
use pigeon_runtime::interp::CompactTable;
use pigeon_runtime::HeteroGraph;

/// Every zoo model: the `.rgnn` files of `examples/`.
fn models() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let names = pigeon_frontend::model_files(std::path::Path::new(dir)).expect("examples/");
    assert!(names.len() >= 9, "the zoo shrank: {names:?}");
    names
}

/// A zoo model, with `heads` set where the model has that parameter.
fn model(name: &str, heads: i64) -> Module {
    let path = format!("{}/../examples/{name}.rgnn", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("zoo file");
    let params = if text.contains("heads =") { vec![("heads".to_string(), heads)] } else { vec![] };
    let src = pigeon_frontend::SourceFile { name: path, text };
    match pigeon_frontend::compile(&src, None, &params) {
        Ok(m) => m,
        Err(d) => panic!("{name} does not compile: {d:?}"),
    }
}

fn stats_of(g: &HeteroGraph) -> GraphStats {
    let mut indeg = vec![0usize; g.num_nodes()];
    for &d in &g.dst {
        indeg[d as usize] += 1;
    }
    GraphStats {
        nodes: g.num_nodes(),
        edges: g.num_edges(),
        relations: g.num_relations(),
        node_types: g.num_node_types(),
        compact_src_rows: CompactTable::build(g, Endpoint::Src).len(),
        compact_dst_rows: CompactTable::build(g, Endpoint::Dst).len(),
        max_in_degree: indeg.iter().copied().max().unwrap_or(0),
        typed_relations: g.relations.iter().all(|r| r.src_type.is_some() && r.dst_type.is_some()),
    }
}

/// Fuses, lowers, schedules and assigns slots; the plan must verify.
fn plan(m: &Module, fused: bool, stats: &GraphStats) -> Plan {
    let fusion = fuse(m, fused);
    let mut p = match lower_to_plan(m, &fusion, stats) {
        Ok(p) => p,
        Err(e) => panic!("{} (fuse {fused}) does not lower: {e}\n{fusion}", m.name),
    };
    choose_schedules(&mut p, stats);
    assign_slots(&mut p, stats);
    if let Err(errs) = pigeon_ir::verify_plan(&p) {
        let list: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        panic!(
            "{} (fuse {fused}): plan does not verify:\n{}\n{}",
            m.name,
            list.join("\n"),
            pigeon_ir::print_plan(&p)
        );
    }
    p
}

fn graph(name: &str, types: &[usize], relations: usize, edges: &[(u32, u32, u32)]) -> HeteroGraph {
    let mut offsets = vec![0];
    for t in types {
        offsets.push(offsets.last().copied().unwrap_or(0) + t);
    }
    HeteroGraph {
        name: name.into(),
        node_types: (0..types.len()).map(|t| format!("t{t}")).collect(),
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

/// Graphs with a relation without edges, isolated nodes, self-loops, multi-edges, a node type
/// without edges, a single edge, a single relation; and a random one.
fn graphs() -> Vec<HeteroGraph> {
    let adversarial = graph(
        "adversarial",
        &[5, 3, 1],
        3,
        &[
            (0, 1, 0),
            (0, 1, 0),
            (2, 2, 0),
            (3, 1, 1),
            (5, 1, 1),
            (6, 4, 1),
            (1, 0, 0),
            (4, 6, 0),
            (5, 5, 1),
        ],
    );
    let single = graph("single", &[3], 1, &[(2, 0, 0)]);
    let random =
        pigeon_runtime::load_graph("synthetic:nodes=40,edges=200,relations=3,ntypes=2,seed=1")
            .expect("synthetic graph");
    vec![adversarial, single, random]
}

/// Runs `p` and the interpreter on `g` and compares every output.
fn check_equivalent(m: &Module, p: &Plan, g: &HeteroGraph, what: &str) {
    let mut weights =
        pigeon_runtime::WeightStore::init(m, g.num_relations(), g.num_node_types(), 7);
    weights.perturb(0.3, 11); // non-zero biases, so that dropping a bias shows
    let (inputs, _) = pigeon_runtime::bind_inputs(m, g, 3).expect("inputs");
    let want = pigeon_runtime::interpret(m, g, &inputs, &weights).expect("interpreter");
    let got = exec::run_plan(p, g, &inputs, &weights);
    assert_eq!(got.len(), want.len(), "{what}");
    for ((gn, gt), (wn, wt)) in got.iter().zip(&want) {
        assert_eq!(gn, wn, "{what}");
        assert_eq!((gt.rows, &gt.shape), (wt.rows, &wt.shape), "{what}: output {gn}");
        let scale = wt.data.iter().fold(1.0f64, |a, v| a.max(v.abs()));
        for (i, (a, b)) in gt.data.iter().zip(&wt.data).enumerate() {
            assert!(
                (a - b).abs() <= 1e-9 * scale,
                "{what}: output {gn}[{i}]: plan {a}, interpreter {b}"
            );
        }
    }
}

#[test]
fn every_zoo_plan_verifies_and_matches_the_interpreter() {
    for g in graphs() {
        let stats = stats_of(&g);
        // The same graph declared very skewed: sum-only traversals turn edge-parallel.
        let skewed = GraphStats {
            max_in_degree: stats.edges * 100 + 100,
            nodes: stats.nodes.max(1),
            ..stats.clone()
        };
        for name in &models() {
            for heads in [1, 2] {
                let m = model(name, heads);
                for fused in [true, false] {
                    for (s, label) in [(&stats, "plain"), (&skewed, "skewed")] {
                        let p = plan(&m, fused, s);
                        let what =
                            format!("{name} heads={heads} fuse={fused} {label} on {}", g.name);
                        check_equivalent(&m, &p, &g, &what);
                    }
                }
            }
        }
    }
}

fn computing_insts(m: &Module) -> usize {
    m.insts
        .values()
        .filter(|i| !matches!(i.op, Op::Input { .. } | Op::Weight(_) | Op::Const(_)))
        .count()
}

fn small_stats() -> GraphStats {
    GraphStats {
        nodes: 100,
        edges: 1000,
        relations: 3,
        node_types: 2,
        compact_src_rows: 200,
        compact_dst_rows: 200,
        max_in_degree: 20,
        typed_relations: false,
    }
}

#[test]
fn unfused_plans_have_one_kernel_per_computing_instruction() {
    for name in &models() {
        for heads in [1, 2] {
            let m = model(name, heads);
            let p = plan(&m, false, &small_stats());
            assert_eq!(p.kernels.len(), computing_insts(&m), "{name} heads={heads}");
            let gemms = p.kernels.values().filter(|k| matches!(k, Kernel::Gemm(_))).count();
            let linears = m.insts.values().filter(|i| matches!(i.op, Op::Linear { .. })).count();
            assert_eq!(gemms, linears, "{name}: one gemm per linear");
        }
    }
}

fn edge_temps(p: &Plan) -> usize {
    p.buffers.values().filter(|b| b.kind == BufferKind::Temp && b.rows == RowSpace::Edges).count()
}

/// Kernel and edge-temp counts of the fused plans, worked out by hand from the IR dumps (see
/// each model's comment): only GEMM outputs that a traversal reads stay in memory per edge.
#[test]
fn fused_plans_have_the_expected_kernels_and_keep_edge_values_in_registers() {
    let expected: &[(&str, usize, usize)] = &[
        // scatter gemm (scale, add_into_dst) + root gemm (add agg, add bias)
        ("rgcn", 2, 0),
        // per layer: node-parallel {matvec (N <= 16), mean per relation} + root gemm epilogue
        ("rgcn2", 4, 0),
        // gemm src.h@W, gemm dst.h@W, one node-parallel attention traversal
        ("rgat", 3, 2),
        ("rgat_heads", 3, 2),
        // K, Q, V, kr gemms, rows(one) sqrt, attention, vr gemm, rows(nodes) {gelu, skip
        // gates}, Wout gemm. heads = 1: alpha is a per-edge scalar, so the vr gemm scales by it
        // and adds into the destination (edge temps kr, alpha); heads = 2: the attention
        // traversal aggregates alpha * vr and also does the gelu (edge temps kr, vr).
        ("hgt", 9, 2),
        // two gemms, attention (with the relation-embedding matvec), residual gemm + elu
        ("simplehgn", 4, 2),
        // rows(one) 1+eps, scatter gemm, root gemm, W1 gemm, W2 gemm
        ("rgin", 5, 0),
        // gemm + bias + relu per edge, node-parallel max + concat, out gemm
        ("rsage", 3, 1),
    ];
    for &(name, kernels, temps) in expected {
        for heads in [1, 2] {
            let m = model(name, heads);
            let p = plan(&m, true, &small_stats());
            let dump = pigeon_ir::print_plan(&p);
            assert_eq!(p.kernels.len(), kernels, "{name} heads={heads}\n{dump}");
            assert_eq!(edge_temps(&p), temps, "{name} heads={heads}\n{dump}");
            // Every edge temp is a GEMM's result or operand: values that only traversals
            // compute and read stay in registers.
            let mut gemm_bufs = Vec::new();
            for k in p.kernels.values() {
                if let Kernel::Gemm(g) = k {
                    gemm_bufs.extend([g.a, g.c]);
                    for e in &g.epilogue {
                        if let Epilogue::Scale { buf, .. } | Epilogue::Add { buf, .. } = e {
                            gemm_bufs.push(*buf);
                        }
                    }
                }
            }
            for (id, b) in p.buffers.iter() {
                if b.kind == BufferKind::Temp && b.rows == RowSpace::Edges {
                    assert!(
                        gemm_bufs.contains(&id),
                        "{name}: edge temp {} is no gemm's\n{dump}",
                        b.name
                    );
                }
            }
        }
    }
}

#[test]
fn rgcn_fused_is_a_scatter_gemm_and_the_root_gemm() {
    let m = model("rgcn", 1);
    let p = plan(&m, true, &small_stats());
    let dump = pigeon_ir::print_plan(&p);
    let ks: Vec<&Kernel> = p.kernels.values().collect();
    let Kernel::Gemm(g0) = ks[0] else { panic!("k0 is not a gemm\n{dump}") };
    assert_eq!(g0.rows, RowSpace::Edges);
    assert_eq!(g0.segment, Select::Relation);
    assert_eq!(g0.gather, RowIndex::Node(Endpoint::Src));
    assert_eq!(g0.store, StoreMode::AddIntoDst);
    assert_eq!(p.buffers[g0.a].kind, BufferKind::Input("h".into()));
    assert_eq!(p.buffers[g0.c].rows, RowSpace::Nodes);
    match g0.epilogue.as_slice() {
        [Epilogue::Scale { buf, index: RowIndex::This }] => {
            assert_eq!(p.buffers[*buf].kind, BufferKind::Input("rel_norm".into()))
        }
        e => panic!("k0 epilogue {e:?}"),
    }
    let Kernel::Gemm(g1) = ks[1] else { panic!("k1 is not a gemm\n{dump}") };
    assert_eq!((g1.rows, g1.segment, g1.gather), (RowSpace::Nodes, Select::Same, RowIndex::This));
    assert_eq!(g1.epilogue.len(), 2, "{dump}");
    assert_eq!(p.buffers[g1.c].kind, BufferKind::Output("out".into()));
    assert!(p.layouts.contains(&pigeon_ir::plan::Layout::EdgesByRelation));
}

#[test]
fn rgat_fused_attention_is_one_node_parallel_traversal() {
    for heads in [1, 2] {
        let p = plan(&model("rgat", heads), true, &small_stats());
        let dump = pigeon_ir::print_plan(&p);
        let travs: Vec<_> = p
            .kernels
            .values()
            .filter_map(|k| match k {
                Kernel::Traversal(t) => Some(t),
                _ => None,
            })
            .collect();
        assert_eq!(travs.len(), 1, "{dump}");
        let t = travs[0];
        assert_eq!(t.schedule, Schedule::NodeParallel);
        let count = |f: &dyn Fn(&StmtOp) -> bool| t.body.iter().filter(|s| f(&s.op)).count();
        assert_eq!(count(&|o| matches!(o, StmtOp::Softmax { .. })), 1, "{dump}");
        assert_eq!(count(&|o| matches!(o, StmtOp::Aggregate { .. })), 1, "{dump}");
        assert_eq!(count(&|o| matches!(o, StmtOp::MatVec { .. })), 2, "{dump}");
        // Only the output is stored: score, alpha and the messages stay in registers.
        assert_eq!(count(&|o| matches!(o, StmtOp::Store { .. })), 1, "{dump}");
        assert!(p.layouts.contains(&pigeon_ir::plan::Layout::InCsr));
    }
}

#[test]
fn sum_only_traversals_go_edge_parallel_only_on_skewed_graphs() {
    // rgin unfused: `aggregate sum` alone is a node-parallel traversal.
    let m = model("rgin", 1);
    let even = small_stats();
    let p = plan(&m, false, &even);
    assert!(p
        .kernels
        .values()
        .all(|k| !matches!(k, Kernel::Traversal(t) if t.schedule == Schedule::EdgeParallel)));
    let skewed = GraphStats { max_in_degree: 900, ..even };
    let p = plan(&m, false, &skewed);
    let edge_par = p
        .kernels
        .values()
        .filter(|k| matches!(k, Kernel::Traversal(t) if t.schedule == Schedule::EdgeParallel))
        .count();
    assert_eq!(edge_par, 1);
    // Softmax and max stay node-parallel whatever the skew.
    for name in ["rgat", "rsage"] {
        let p = plan(&model(name, 1), true, &skewed);
        for k in p.kernels.values() {
            if let Kernel::Traversal(t) = k {
                if t.schedule == Schedule::NodeParallel {
                    assert_eq!(to_edge_parallel(t), None, "{name}");
                }
            }
        }
    }
}

#[test]
fn slots_share_memory_between_disjoint_lifetimes() {
    // rgcn2 unfused: a chain of node temps, most dead after the next kernel.
    let m = model("rgcn2", 1);
    let stats = small_stats();
    let fusion = fuse(&m, false);
    let mut p = lower_to_plan(&m, &fusion, &stats).expect("lowers");
    let report = assign_slots(&mut p, &stats);
    assert!(report.slots < report.temps, "{report:?}");
    assert!(report.saved() > 0, "{report:?}");
    pigeon_ir::verify_plan(&p).expect("slots verify");
    let temps = p.buffers.values().filter(|b| b.kind == BufferKind::Temp).count();
    assert_eq!(report.temps, temps);
    assert!(p.buffers.values().all(|b| (b.kind == BufferKind::Temp) == b.slot.is_some()));
}

/// The inter-level passes before fusion (reordering, compact materialization), so that plans
/// with compact rows, edge-to-compact reads and weight-domain GEMMs are checked too.
fn optimized(m: &Module, stats: &GraphStats) -> Module {
    let limits = pigeon_passes::reorder_linear::ReorderLimits::default();
    let (r, _) =
        pigeon_passes::reorder_linear::reorder_linear(m, stats, &limits).expect("reorders");
    let r = pigeon_passes::cleanup::cleanup(&r);
    let (c, _) = pigeon_passes::materialize_compact::materialize_compact(&r, stats);
    pigeon_passes::cleanup::cleanup(&c)
}

#[test]
fn plans_of_optimized_modules_match_the_interpreter() {
    let mut compact_seen = false;
    let mut weight_gemm_seen = false;
    for g in graphs() {
        let stats = stats_of(&g);
        for name in &models() {
            for heads in [1, 2] {
                let m = model(name, heads);
                let opt = optimized(&m, &stats);
                for fused in [true, false] {
                    let p = plan(&opt, fused, &stats);
                    compact_seen |=
                        p.buffers.values().any(|b| matches!(b.rows, RowSpace::Compact(_)));
                    weight_gemm_seen |= p.kernels.values().any(|k| {
                        let weight_rows = [RowSpace::Relations, RowSpace::NodeTypes, RowSpace::One];
                        matches!(k, Kernel::Gemm(gm) if weight_rows.contains(&gm.rows))
                    });
                    let what = format!("optimized {name} heads={heads} fuse={fused} on {}", g.name);
                    check_equivalent(&m, &p, &g, &what);
                }
            }
        }
    }
    assert!(compact_seen, "no plan had compact rows");
    assert!(weight_gemm_seen, "no plan had a weight-domain gemm");
}

#[test]
fn rgcn_fusion_groups_are_the_documented_ones() {
    // The example of `fuse.rs`'s module doc.
    let f = fuse(&model("rgcn", 1), true);
    assert_eq!(f.to_string(), "g0 gemm: v4 v5 v6\ng1 gemm: v8 v9 v11\n");
    let f = fuse(&model("rgcn", 1), false);
    assert_eq!(f.groups.len(), 7);
}

#[test]
fn a_matvec_reads_a_computed_weight_from_memory() {
    // A per-edge weight computed by the program: the matvec cannot read it from a register
    // of its own traversal, so the view is materialised by an earlier kernel.
    let text = "model t(d = 4)

v0 = input \"h\"        : node [4] f32
v1 = gather v0 by src : edge [4] f32
v2 = view v1 as [4, 1] : edge [4, 1] f32
v3 = linear v1, v2 by same : edge [1] f32
v4 = aggregate sum v3 : node [1] f32

output \"out\" = v4
";
    let m = pigeon_ir::parse_module(text).expect("parses");
    for g in graphs() {
        let stats = stats_of(&g);
        for fused in [true, false] {
            let p = plan(&m, fused, &stats);
            if fused {
                assert_eq!(p.kernels.len(), 2, "{}", pigeon_ir::print_plan(&p));
            }
            check_equivalent(&m, &p, &g, &format!("computed weight fuse={fused} on {}", g.name));
        }
    }
}

#[test]
fn outputs_that_are_inputs_weights_or_repeated_get_copy_kernels() {
    let text = "model t(d = 4)

weight w0 \"W\": relation [4, 4] glorot

v0 = input \"h\" : node [4] f32
v1 = weight w0 : relation [4, 4] f32
v2 = relu v0 : node [4] f32

output \"x\" = v0
output \"w\" = v1
output \"a\" = v2
output \"b\" = v2
";
    let m = pigeon_ir::parse_module(text).expect("parses");
    for g in graphs() {
        let stats = stats_of(&g);
        for fused in [true, false] {
            let p = plan(&m, fused, &stats);
            // relu, and copies for x, w and b.
            assert_eq!(p.kernels.len(), 4, "{}", pigeon_ir::print_plan(&p));
            let relations = Schedule::Rows(RowSpace::Relations);
            let copy_w = p
                .kernels
                .values()
                .any(|k| matches!(k, Kernel::Traversal(t) if t.schedule == relations));
            assert!(copy_w);
            check_equivalent(&m, &p, &g, &format!("outputs fuse={fused} on {}", g.name));
        }
    }
}
