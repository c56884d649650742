//! The CUDA back end: (1) without a GPU, every kernel of every zoo model under every
//! optimisation setting compiles with NVRTC for sm_80 and sm_90, and the GEMM template spills
//! no registers (ptxas); (2) with a GPU, the equivalence suite of the CPU back end runs on the
//! CUDA back end against the reference interpreter. Parts that cannot run here say why; with
//! `PIGEON_REQUIRE_NVRTC=1` (CI) a missing NVRTC or ptxas is a failure, and with
//! `PIGEON_REQUIRE_GPU=1` (the GPU check script) a missing GPU is.
//!
//! Tolerance on the GPU: f32 kernels agree with the f64 interpreter to 2e-4 of the output's
//! largest magnitude, as the CPU back end in f32; TF32 GEMMs to 5e-3 (operands rounded to 10
//! mantissa bits); BF16 GEMMs to 3e-2 (7 mantissa bits).

mod common;

use common::cuda::{gpu, nvrtc, ptxas_report, required};
use common::{adversarial_graphs, compare, compile_zoo, settings, zoo};
use pigeon::codegen::{self, GemmMath};
use pigeon::passes::{pipeline, Options};
use pigeon::runtime::cuda;
use pigeon::runtime::layout::graph_stats;

fn plans_of_the_zoo() -> Vec<(String, pigeon::ir::plan::Plan)> {
    let g = &adversarial_graphs()[0];
    let stats = graph_stats(g);
    let mut plans = Vec::new();
    for (name, params) in zoo() {
        let module = compile_zoo(name, &params);
        for options in settings() {
            let compiled = pipeline::compile(&module, &stats, &options, None)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let plan = compiled.plan.expect("a plan");
            plans.push((format!("{name} {params:?} {options:?}"), plan));
        }
    }
    plans
}

#[test]
fn every_zoo_kernel_compiles_with_nvrtc_for_sm80_and_sm90() {
    let Some(version) = nvrtc() else { return };
    let mut compiled = 0;
    for (what, plan) in plans_of_the_zoo() {
        let maths: &[GemmMath] = if what.contains("reorder: true, compact: true, fuse: true") {
            &[GemmMath::Simt, GemmMath::Tf32, GemmMath::Bf16]
        } else {
            &[GemmMath::Simt]
        };
        for &gemm_math in maths {
            let program = codegen::generate(&plan, &codegen::Options { gemm_math })
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            for arch in ["sm_80", "sm_90"] {
                let ptx = cuda::compile_ptx(&program.source, arch)
                    .unwrap_or_else(|e| panic!("{what} {gemm_math:?} {arch}: {e}"));
                for k in &program.kernels {
                    assert!(
                        ptx.contains(&format!(".entry {}(", k.name)),
                        "{what}: PTX lacks kernel {}",
                        k.name
                    );
                }
                compiled += 1;
            }
        }
    }
    eprintln!("NVRTC {}.{}: {compiled} translation units compiled", version.0, version.1);
    assert!(compiled >= 11 * 8 * 2);
}

#[test]
fn the_gemm_template_spills_no_registers() {
    if nvrtc().is_none() {
        return;
    }
    let (_, plan) = plans_of_the_zoo()
        .into_iter()
        .find(|(what, _)| what.starts_with("rgcn ") && what.contains("fuse: true"))
        .expect("an R-GCN plan");
    let mut checked = 0;
    for gemm_math in [GemmMath::Simt, GemmMath::Tf32, GemmMath::Bf16] {
        let program = codegen::generate(&plan, &codegen::Options { gemm_math }).expect("generate");
        for arch in ["sm_80", "sm_90"] {
            let ptx = cuda::compile_ptx(&program.source, arch).expect("compile");
            let Some(report) = ptxas_report(&ptx, arch) else {
                assert!(!required("PIGEON_REQUIRE_NVRTC"), "PIGEON_PTXAS must name ptxas in CI");
                eprintln!("skipped: set PIGEON_PTXAS to a ptxas binary for the spill check");
                return;
            };
            for line in report.lines().filter(|l| l.contains("spill")) {
                assert!(
                    line.contains("0 bytes spill stores, 0 bytes spill loads"),
                    "{gemm_math:?} {arch}: {line}\n{report}"
                );
            }
            assert!(report.contains("gemm_"), "the report names the GEMM kernels: {report}");
            checked += 1;
        }
    }
    assert_eq!(checked, 6);
}

#[test]
fn every_model_every_setting_every_adversarial_graph_on_the_gpu() {
    let Some(backend) = gpu(GemmMath::Simt) else { return };
    for (name, params) in zoo() {
        let module = compile_zoo(name, &params);
        for g in adversarial_graphs() {
            for options in settings() {
                let err = compare(&module, &g, &options, &backend);
                assert!(
                    err <= 2e-4,
                    "{name} {params:?} on {} with {options:?}: relative error {err:e}",
                    g.name
                );
            }
        }
    }
}

#[test]
fn every_model_on_a_skewed_synthetic_graph_on_the_gpu_in_every_gemm_math() {
    let g =
        pigeon::runtime::load_graph("synthetic:nodes=3000,edges=40000,relations=6,ntypes=3,seed=4")
            .expect("synthetic");
    for (math, tolerance) in
        [(GemmMath::Simt, 2e-4), (GemmMath::Tf32, 5e-3), (GemmMath::Bf16, 3e-2)]
    {
        let Some(backend) = gpu(math) else { return };
        let mut worst = 0.0f64;
        for (name, params) in zoo() {
            let module = compile_zoo(name, &params);
            for options in [Options::default(), Options::none()] {
                let err = compare(&module, &g, &options, &backend);
                assert!(err <= tolerance, "{name} {params:?} {math:?} {options:?}: {err:e}");
                worst = worst.max(err);
            }
        }
        eprintln!("{math:?}: largest relative error {worst:.2e} (tolerance {tolerance:e})");
    }
}

#[test]
fn random_graphs_on_the_gpu() {
    let Some(backend) = gpu(GemmMath::Simt) else { return };
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
            let err = compare(&module, &g, &options, &backend);
            assert!(err <= 2e-4, "{name} on {spec} with {options:?}: relative error {err:e}");
        }
    }
}
