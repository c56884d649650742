//! The CUDA back end on backward plans: (1) without a GPU, the backward module of every zoo
//! model (differentiated with respect to every input, split, compiled for each adversarial
//! graph and each of the 8 optimisation settings) generates CUDA that compiles with NVRTC for
//! sm_80 and sm_90, every kernel of it is in the PTX, and (with `$PIGEON_PTXAS` naming ptxas)
//! none spills registers; the host side of the CUDA back end builds its tables; the same for
//! the codegen fixture of every backward element; (2) with a GPU, each of those
//! backward plans runs on the CUDA back end and matches the CPU back end in f32. Parts that
//! cannot run here say why; with `PIGEON_REQUIRE_NVRTC=1` (CI) a missing NVRTC is a failure,
//! and with `PIGEON_REQUIRE_GPU=1` a missing GPU is.
//!
//! Tolerance on the GPU: both back ends compute in f32 with different summation orders
//! (atomics, split-K weight gradients), so outputs agree to 2e-4 of max(1, the output's largest
//! magnitude), the tolerance of `tests/cuda.rs`.

mod common;

use common::cuda::{gpu, nvrtc, ptxas_report};
use common::{adversarial_graphs, compile_zoo, settings, zoo};
use pigeon::codegen::{self, GemmMath};
use pigeon::ir::plan::{Kernel, Plan, StmtOp};
use pigeon::ir::Module;
use pigeon::passes::autodiff::{Differentiated, Split};
use pigeon::runtime::backend::Backend;
use pigeon::runtime::bind::bind_inputs;
use pigeon::runtime::cpu::{CpuBackend, Precision};
use pigeon::runtime::cuda;
use pigeon::runtime::graph::HeteroGraph;
use pigeon::runtime::interp::interpret;
use pigeon::runtime::rng::Rng;
use pigeon::runtime::tensor::Tensor;
use pigeon::runtime::weights::WeightStore;

/// With `$PIGEON_PTXAS`, asserts that no kernel of `ptx` spills registers.
fn check_spills(ptx: &str, arch: &str, what: &str) {
    let Some(report) = ptxas_report(ptx, arch) else { return };
    for line in report.lines().filter(|l| l.contains("spill")) {
        assert!(
            line.contains("0 bytes spill stores, 0 bytes spill loads"),
            "{what} {arch}: {line}\n{report}"
        );
    }
}

/// The optimised backward plan of `s` on `graph` under `options`.
fn backward_plan(s: &Split, graph: &HeteroGraph, options: &pigeon::passes::Options) -> Plan {
    let stats = pigeon::runtime::layout::graph_stats(graph);
    let compiled = pigeon::passes::compile(&s.backward, &stats, options, None)
        .unwrap_or_else(|e| panic!("{} with {options:?}: {e}", s.backward.name));
    compiled.plan.expect("a plan")
}

/// Which backward elements a plan has, for the coverage count.
fn backward_elements(plan: &Plan) -> Vec<&'static str> {
    let mut out = Vec::new();
    for k in plan.kernels.values() {
        match k {
            Kernel::WeightGrad(g) => out.push(match g.rows {
                pigeon::ir::plan::RowSpace::Compact(_) => "weight_grad over compact rows",
                _ => "weight_grad",
            }),
            Kernel::Gemm(g) if g.store == pigeon::ir::plan::StoreMode::AddIntoSrc => {
                out.push(match g.rows {
                    pigeon::ir::plan::RowSpace::Compact(_) => "gemm add_into_src from compact rows",
                    _ => "gemm add_into_src",
                })
            }
            Kernel::Gemm(_) => {}
            Kernel::Traversal(t) => {
                let compact_rows = matches!(
                    t.schedule,
                    pigeon::ir::plan::Schedule::Rows(pigeon::ir::plan::RowSpace::Compact(_))
                );
                for s in &t.body {
                    out.push(match s.op {
                        StmtOp::Store { mode: pigeon::ir::plan::StoreMode::AddIntoSrc, .. }
                            if compact_rows =>
                        {
                            "store add_into_src from compact rows"
                        }
                        StmtOp::UnaryGrad { .. } => "grad",
                        StmtOp::SumTo { .. } => "sum_to",
                        StmtOp::Transpose { .. } => "transpose",
                        StmtOp::Narrow { .. } => "narrow",
                        StmtOp::GroupSize { .. } => "group_size",
                        StmtOp::MaxGrad { .. } => "max_grad",
                        StmtOp::Store { mode: pigeon::ir::plan::StoreMode::AddIntoSrc, .. } => {
                            "store add_into_src"
                        }
                        StmtOp::Store {
                            mode: pigeon::ir::plan::StoreMode::AddIntoCompact(_),
                            ..
                        } => "store add_into_compact",
                        _ => continue,
                    });
                }
            }
        }
    }
    out
}

#[test]
fn every_zoo_backward_plan_compiles_with_nvrtc_for_sm80_and_sm90() {
    let Some(version) = nvrtc() else { return };
    let (mut generated, mut compiled) = (0, 0);
    let mut seen: Vec<&'static str> = Vec::new();
    // For review: `PIGEON_CUDA_BACKWARD_DIR=dir` writes each distinct source there.
    let dump = std::env::var_os("PIGEON_CUDA_BACKWARD_DIR").map(std::path::PathBuf::from);
    // The zoo, and HGT 64 wide, whose key and value input gradients are GEMMs (narrow ones are
    // matvecs in traversals) over compact rows where compaction pays.
    let wide = ("hgt", vec![("in_dim".to_string(), 64), ("out_dim".to_string(), 64)]);
    let models = zoo().len() + 1;
    for (name, params) in zoo().into_iter().chain([wide]) {
        let module = compile_zoo(name, &params);
        let (_, s) = common::differentiated(&module);
        let mut sources = std::collections::HashSet::new();
        for graph in adversarial_graphs() {
            for options in settings() {
                let plan = backward_plan(&s, &graph, &options);
                seen.extend(backward_elements(&plan));
                let what = format!("{name} {params:?} on {} with {options:?}", graph.name);
                let program = codegen::generate(&plan, &codegen::Options::default())
                    .unwrap_or_else(|e| panic!("{what}: {e}\n{plan}"));
                // The host side (storages, graph arrays, GEMM and weight-gradient tables,
                // checked against the segmentation each kernel expects) needs no GPU.
                cuda::estimate_program_memory(&plan, &graph, &program)
                    .unwrap_or_else(|e| panic!("{what}: host tables: {e}"));
                generated += 1;
                // Many graphs give the same plan: compile each distinct source once.
                if !sources.insert(program.source.clone()) {
                    continue;
                }
                if let Some(dir) = &dump {
                    let file = dir.join(format!("{name}_{}.cu", sources.len()));
                    std::fs::create_dir_all(dir).expect("dump folder");
                    std::fs::write(file, format!("// {what}\n{}", program.source)).expect("dump");
                }
                for arch in ["sm_80", "sm_90"] {
                    let ptx = cuda::compile_ptx(&program.source, arch)
                        .unwrap_or_else(|e| panic!("{what} {arch}: {e}"));
                    for k in &program.kernels {
                        assert!(
                            ptx.contains(&format!(".entry {}(", k.name)),
                            "{what}: PTX lacks kernel {}",
                            k.name
                        );
                    }
                    // Known: 64 wide, the weight transposes (a traversal over relations or
                    // node types whose row is a whole 64 x 64 slice per thread) spill about
                    // 224 bytes on sm_80 (docs/cuda.md, "Open"); the narrow zoo has none.
                    if !params.iter().any(|(_, v)| *v >= 64) {
                        check_spills(&ptx, arch, &what);
                    }
                    compiled += 1;
                }
            }
        }
    }
    seen.sort_unstable();
    seen.dedup();
    eprintln!(
        "NVRTC {}.{}: {generated} backward plans generated, {compiled} distinct translation \
         units compiled; elements: {seen:?}",
        version.0, version.1
    );
    assert_eq!(generated, models * adversarial_graphs().len() * settings().len());
    assert!(compiled >= 2 * 2 * models, "{compiled} translation units for {models} models");
    let musts = ["weight_grad", "grad", "sum_to", "store add_into_src", "store add_into_compact"];
    let compact = [
        "weight_grad over compact rows",
        "gemm add_into_src from compact rows",
        "store add_into_src from compact rows",
    ];
    for must in musts.into_iter().chain(compact).chain(["group_size", "max_grad"]) {
        assert!(seen.contains(&must), "no zoo backward plan has `{must}`: {seen:?}");
    }
}

/// The backward inputs of `module` on `graph`: its inputs, the saved activations of the
/// forward half, and random adjoints of its outputs; and its weights.
fn backward_inputs(
    module: &Module,
    d: &Differentiated,
    s: &Split,
    graph: &HeteroGraph,
    seed: u64,
) -> (Vec<(String, Tensor)>, WeightStore) {
    let mut weights =
        WeightStore::init(module, graph.num_relations(), graph.num_node_types(), seed);
    weights.perturb(0.5, seed + 1);
    let (mut inputs, _) = bind_inputs(module, graph, seed + 2).expect("bind");
    let fwd = interpret(&s.forward, graph, &inputs, &weights).expect("forward");
    let mut rng = Rng::new(seed + 3);
    let outs = interpret(module, graph, &inputs, &weights).expect("outputs");
    inputs.extend(fwd.into_iter().filter(|(n, _)| n.starts_with("saved:")));
    for (out, seed_name) in &d.seeds {
        let t = &outs.iter().find(|(n, _)| n == out).expect("an output").1;
        let data = (0..t.data.len()).map(|_| rng.normal()).collect();
        inputs.push((seed_name.clone(), Tensor { rows: t.rows, shape: t.shape.clone(), data }));
    }
    (inputs, weights)
}

#[test]
fn every_zoo_backward_plan_on_the_gpu_matches_the_cpu_back_end() {
    let Some(backend) = gpu(GemmMath::Simt) else { return };
    let cpu = CpuBackend::new(Precision::F32);
    let mut runs = 0;
    for (name, params) in zoo() {
        let module = compile_zoo(name, &params);
        let (d, s) = common::differentiated(&module);
        for (gi, graph) in adversarial_graphs().into_iter().enumerate() {
            let (inputs, weights) = backward_inputs(&module, &d, &s, &graph, 11 + gi as u64);
            for options in settings() {
                let plan = backward_plan(&s, &graph, &options);
                let what = format!("{name} {params:?} on {} with {options:?}", graph.name);
                let want = cpu
                    .execute(&plan, &graph, &inputs, &weights)
                    .unwrap_or_else(|e| panic!("{what}: CPU: {e}"));
                let got = backend
                    .execute(&plan, &graph, &inputs, &weights)
                    .unwrap_or_else(|e| panic!("{what}: CUDA: {e}\n{plan}"));
                assert_eq!(got.outputs.len(), want.outputs.len(), "{what}");
                for ((gn, gt), (wn, wt)) in got.outputs.iter().zip(&want.outputs) {
                    assert_eq!(gn, wn, "{what}");
                    assert_eq!((gt.rows, &gt.shape), (wt.rows, &wt.shape), "{what}: {gn}");
                    let scale = wt.data.iter().fold(1.0f64, |m, x| m.max(x.abs()));
                    let err = gt.data.iter().zip(&wt.data).fold(0.0f64, |m, (g, w)| {
                        m.max(if g.is_nan() || w.is_nan() { f64::INFINITY } else { (g - w).abs() })
                    });
                    assert!(err / scale <= 2e-4, "{what}: {gn}: relative error {:e}", err / scale);
                }
                runs += 1;
            }
        }
    }
    assert!(runs >= 11 * 8, "{runs} runs");
}

/// The codegen fixture holding every backward element (`codegen/src/fixtures/backward.plan`),
/// which covers forms the zoo does not produce (a GEMM adding into source rows, batched and
/// broadcast weight gradients, transposes through scratch).
fn fixture() -> Plan {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/codegen/src/fixtures/backward.plan");
    let text = std::fs::read_to_string(path).expect("the fixture");
    pigeon::ir::parse_plan(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_backward_fixture_compiles_with_nvrtc_for_sm80_and_sm90() {
    let Some(_) = nvrtc() else { return };
    let plan = fixture();
    let program = codegen::generate(&plan, &codegen::Options::default()).expect("generate");
    for arch in ["sm_80", "sm_90"] {
        let ptx =
            cuda::compile_ptx(&program.source, arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
        for k in &program.kernels {
            assert!(ptx.contains(&format!(".entry {}(", k.name)), "{arch}: no {}", k.name);
        }
        check_spills(&ptx, arch, "the backward fixture");
    }
}

/// Random values for every input buffer of `plan` on `graph` (the fixture's rows are nodes,
/// edges and relations).
fn fixture_inputs(plan: &Plan, graph: &HeteroGraph, seed: u64) -> Vec<(String, Tensor)> {
    use pigeon::ir::plan::{BufferKind, RowSpace};
    let mut rng = Rng::new(seed);
    let mut inputs = Vec::new();
    for buf in plan.buffers.values() {
        let BufferKind::Input(name) = &buf.kind else { continue };
        let rows = match buf.rows {
            RowSpace::Nodes => graph.num_nodes(),
            RowSpace::Edges => graph.num_edges(),
            RowSpace::Relations => graph.num_relations(),
            other => panic!("the fixture has no {other:?} inputs"),
        };
        // Values on a grid of 1/4 so that max_grad sees ties.
        let data =
            (0..rows * buf.shape.numel()).map(|_| (rng.normal() * 4.0).round() / 4.0).collect();
        inputs.push((name.clone(), Tensor { rows, shape: buf.shape.clone(), data }));
    }
    inputs
}

/// The fixture on the CPU back end and the CUDA host side (no GPU needed), then, where there
/// is a GPU, on CUDA against the CPU.
#[test]
fn the_backward_fixture_on_the_gpu_matches_the_cpu_back_end() {
    let cpu = CpuBackend::new(Precision::F32);
    let plan = fixture();
    let weights = WeightStore::default();
    let mut runs = Vec::new();
    for (gi, graph) in adversarial_graphs().into_iter().enumerate() {
        let inputs = fixture_inputs(&plan, &graph, 5 + gi as u64);
        let want = cpu.execute(&plan, &graph, &inputs, &weights).expect("CPU");
        let estimate = cuda::estimate_memory(&plan, &graph).expect("host tables");
        assert!(estimate.items.iter().any(|(n, _)| n.starts_with("tiles of GEMM launch 0")));
        runs.push((graph, inputs, want));
    }
    let Some(backend) = gpu(GemmMath::Simt) else { return };
    for (graph, inputs, want) in runs {
        let got = backend.execute(&plan, &graph, &inputs, &weights).expect("CUDA");
        for ((gn, gt), (_, wt)) in got.outputs.iter().zip(&want.outputs) {
            let scale = wt.data.iter().fold(1.0f64, |m, x| m.max(x.abs()));
            let err = gt.data.iter().zip(&wt.data).fold(0.0f64, |m, (g, w)| m.max((g - w).abs()));
            assert!(err / scale <= 2e-4, "{} {gn}: relative error {:e}", graph.name, err / scale);
        }
    }
}
