//! The GEMM template's CUDA generation over the model zoo: every GEMM of every model, under
//! every optimisation setting, heads 1 and 4 where a model has heads, in the three math modes,
//! generates, with launch descriptions that match the plan; R-GCN's GEMMs are snapshotted.
//!
//! Set `PIGEON_GEMM_DUMP=DIR` to also write each generated translation unit to `DIR` (for
//! `scripts/ptxas-report.sh DIR`, which compiles them with NVRTC and reports registers and
//! spills).

use pigeon_codegen::{generate, GemmMath, Grid, Options, Param, Segmentation};
use pigeon_frontend::SourceFile;
use pigeon_ir::plan::{Kernel, Plan, RowSpace, StoreMode};
use pigeon_ir::{Arena, GraphStats};
use pigeon_passes::Options as PassOptions;

/// Every zoo model: the `.rgnn` files of `examples/`.
fn models() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let names = pigeon_frontend::model_files(std::path::Path::new(dir)).expect("examples/");
    assert!(names.len() >= 9, "the zoo shrank: {names:?}");
    names
}
/// The last line of `cuda/gemm.cuh`: what follows is generated.
const GEMM_MARKER: &str = "#endif  // PIGEON_GEMM_CUH";
const MATHS: [GemmMath; 3] = [GemmMath::Simt, GemmMath::Tf32, GemmMath::Bf16];

/// AIFB-like sizes (with several node types so that per-type weights stay per type).
fn stats() -> GraphStats {
    GraphStats {
        nodes: 8_285,
        edges: 29_043,
        relations: 45,
        node_types: 4,
        compact_src_rows: 15_985,
        compact_dst_rows: 12_000,
        max_in_degree: 1_248,
        typed_relations: false,
    }
}

fn source(model: &str) -> SourceFile {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(format!("{model}.rgnn"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    SourceFile { name: path.display().to_string(), text }
}

fn plan(model: &str, params: &[(String, i64)], options: &PassOptions) -> Plan {
    let module = pigeon_frontend::compile(&source(model), None, params)
        .unwrap_or_else(|e| panic!("{model}: {e:?}"));
    let compiled = pigeon_passes::pipeline::compile(&module, &stats(), options, None)
        .unwrap_or_else(|e| panic!("{model} {options:?}: {e}"));
    compiled.plan.unwrap_or_else(|| panic!("{model}: the full pipeline gives a plan"))
}

/// `plan` with only its GEMM kernels, each alone (so the traversal template is not needed).
fn gemm_plans(plan: &Plan) -> Vec<Plan> {
    plan.kernels
        .values()
        .filter(|k| matches!(k, Kernel::Gemm(_)))
        .map(|k| {
            let mut kernels = Arena::new();
            kernels.push(k.clone());
            Plan { kernels, ..plan.clone() }
        })
        .collect()
}

fn settings() -> Vec<PassOptions> {
    (0..8)
        .map(|b| PassOptions { reorder: b & 1 != 0, compact: b & 2 != 0, fuse: b & 4 != 0 })
        .collect()
}

fn dump(dir: &Option<String>, name: &str, source: &str) {
    if let Some(dir) = dir {
        let path = std::path::Path::new(dir).join(format!("{name}.cu"));
        if let Err(e) = std::fs::write(&path, source) {
            panic!("cannot write {}: {e}", path.display());
        }
    }
}

/// The generated part of a translation unit (after the fixed templates).
fn generated(source: &str) -> &str {
    source.split_once(GEMM_MARKER).map_or(source, |(_, tail)| tail)
}

#[test]
fn every_zoo_gemm_generates_in_every_mode() {
    let dir = std::env::var("PIGEON_GEMM_DUMP").ok();
    let mut count = 0;
    let mut seen_accumulate = false;
    for model in &models() {
        let heads: &[i64] = if source(model).text.contains("heads") { &[1, 4] } else { &[0] };
        for &h in heads {
            let params = if h == 0 { vec![] } else { vec![("heads".to_string(), h)] };
            for (si, options) in settings().iter().enumerate() {
                for (gi, p) in gemm_plans(&plan(model, &params, options)).iter().enumerate() {
                    let Some(Kernel::Gemm(g)) = p.kernels.values().next() else { continue };
                    for math in MATHS {
                        let program = generate(p, &Options { gemm_math: math })
                            .unwrap_or_else(|e| panic!("{model} h{h} {options:?} {math:?}: {e}"));
                        let launch = &program.kernels[0];
                        check_launch(launch, g, model);
                        let text = generated(&program.source);
                        assert!(text.contains(&format!("pg::gemm::run<pg::gemm::{math:?}>")));
                        let accumulate = g.store == StoreMode::AddIntoDst;
                        assert!(text.contains(&format!("ACCUMULATE = {accumulate}")));
                        seen_accumulate |= accumulate;
                        let tag = format!("{model}_h{h}_s{si}_g{gi}_{math:?}");
                        dump(&dir, &tag.to_lowercase(), &program.source);
                        count += 1;
                    }
                }
            }
        }
    }
    assert!(count > 100, "only {count} GEMM kernels");
    assert!(seen_accumulate, "no GEMM adds into destinations");
}

fn check_launch(launch: &pigeon_codegen::KernelLaunch, g: &pigeon_ir::plan::Gemm, model: &str) {
    assert!(launch.name.starts_with(&format!("gemm_{model}_")), "{}", launch.name);
    assert_eq!(launch.block, 256);
    let Grid::Gemm { tile_m, y_blocks } = launch.grid else { panic!("{:?}", launch.grid) };
    assert_eq!(tile_m, 64);
    let (batch, n) = match g.form {
        pigeon_ir::shape::LinearForm::Plain { n, .. } => (1, n),
        pigeon_ir::shape::LinearForm::Batched { batch, n, .. }
        | pigeon_ir::shape::LinearForm::Broadcast { batch, n, .. } => (batch, n),
    };
    let tile_n = if n > 32 {
        64
    } else if n > 16 {
        32
    } else {
        16
    };
    assert_eq!(y_blocks as usize, batch * n.div_ceil(tile_n));
    let seg = launch.segmentation.unwrap_or_else(|| panic!("{}: no segmentation", launch.name));
    let p = &launch.params;
    assert_eq!(p[..3], [Param::Buffer(g.a), Param::Buffer(g.b), Param::Buffer(g.c)]);
    assert_eq!(p.contains(&Param::GemmOrder), seg.has_order());
    assert!(p.contains(&Param::GemmTiles) && p.contains(&Param::Count(g.rows)));
    if g.store == StoreMode::AddIntoDst {
        assert!(matches!(g.rows, RowSpace::Edges | RowSpace::Compact(_)));
    }
}

/// R-GCN (fused, compact) and R-GCN without compaction: per-relation GEMMs on compact rows and
/// on edges, with the edge-norm epilogue and accumulation into destinations.
#[test]
fn rgcn_gemms_snapshot() {
    let mut out = String::new();
    for compact in [true, false] {
        let options = PassOptions { compact, ..PassOptions::default() };
        for p in gemm_plans(&plan("rgcn", &[], &options)) {
            let program = generate(&p, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
            out.push_str(&format!("// compact: {compact}; {:?}\n", program.kernels[0].grid));
            out.push_str(&format!("// {:?}\n", program.kernels[0].segmentation));
            out.push_str(generated(&program.source));
        }
    }
    // The edge GEMM segments by relation with the runtime's order and adds into `dst`.
    assert!(out.contains("Some(EdgesByRelation)"));
    assert!(out.contains("unsigned out_row(unsigned i) const { return dst[i]; }"));
    assert!(out.contains("return order[p];"));
    insta::assert_snapshot!(out);
}

/// The segmentations the zoo needs, each decided as the CPU back end would.
#[test]
fn segmentations_match_the_cpu_rules() {
    let mut seen = Vec::new();
    for model in &models() {
        for options in settings() {
            for p in gemm_plans(&plan(model, &[], &options)) {
                let program = generate(&p, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
                let Some(Kernel::Gemm(g)) = p.kernels.values().next() else { continue };
                let b_rows = p.buffers[g.b].rows;
                let seg = program.kernels[0].segmentation;
                let want = match (g.rows, g.segment, b_rows) {
                    (_, _, RowSpace::One) => Segmentation::Single,
                    (r, pigeon_ir::Select::Same, b) if r == b => Segmentation::PerRow,
                    (RowSpace::Edges, pigeon_ir::Select::Relation, _) => {
                        Segmentation::EdgesByRelation
                    }
                    (RowSpace::Compact(ep), pigeon_ir::Select::Relation, _) => {
                        Segmentation::CompactByRelation(ep)
                    }
                    (RowSpace::Nodes, pigeon_ir::Select::NodeType, _) => Segmentation::NodesByType,
                    (RowSpace::Relations, pigeon_ir::Select::Relation, RowSpace::Relations) => {
                        Segmentation::PerRow
                    }
                    (_, sel, _) => Segmentation::Sorted(sel),
                };
                assert_eq!(seg, Some(want), "{model} {options:?}");
                if !seen.contains(&want) {
                    seen.push(want);
                }
            }
        }
    }
    for s in [Segmentation::Single, Segmentation::EdgesByRelation, Segmentation::NodesByType] {
        assert!(seen.contains(&s), "the zoo no longer has a {s:?} GEMM: {seen:?}");
    }
}
