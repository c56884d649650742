//! Tests of the CUDA back end. Without a GPU (or without the `cuda` feature) they check that
//! probing fails cleanly with a reason, the memory estimate against a hand count, and NVRTC
//! compilation where NVRTC loads (`LD_LIBRARY_PATH` naming `libnvrtc.so.12`, or
//! `PIGEON_NVRTC=/path/to/libnvrtc.so.12`; `PIGEON_REQUIRE_NVRTC=1` turns a missing NVRTC into a
//! failure). With a GPU, every zoo model under default and `-O0` settings runs on the CUDA back
//! end and is compared with the CPU back end in f64 (1e-4 relative to the output's scale).
//!
//! The hand graph (7 nodes, node types 0 = {0..3}, 1 = {4, 5}, 2 = {6}; relation 2 has no edge):
//!
//! ```text
//! e0: 0 -> 2 r0   e1: 0 -> 2 r0   e2: 1 -> 1 r0   e3: 3 -> 2 r1
//! e4: 2 -> 0 r1   e5: 4 -> 3 r1   e6: 5 -> 3 r0   e7: 1 -> 2 r1
//! ```

mod common;

use common::hand_graph;
use pigeon_codegen::{CudaProgram, GraphArray, Grid, KernelLaunch, Options, Param, Segmentation};
use pigeon_ir::plan::{
    Buffer, BufferId, BufferKind, Gemm, Kernel, KernelId, Plan, RowIndex, RowSpace, Schedule,
    StoreMode, Traversal,
};
use pigeon_ir::shape::LinearForm;
use pigeon_ir::{Arena, DType, Endpoint, EntityId, Init, Select, Shape, Weight, WeightKind};
use pigeon_runtime::backend::Backend;
use pigeon_runtime::cuda::{self, CudaBackend};
use pigeon_runtime::{HeteroGraph, RuntimeError};

// ---------------------------------------------------------------- without a GPU

#[test]
fn probing_reports_a_reason_instead_of_panicking() {
    match cuda::probe(0) {
        Ok(info) => {
            println!("GPU 0: {info:?}");
            assert!(info.arch.starts_with("sm_") && info.total_bytes > 0, "{info:?}");
        }
        Err(RuntimeError::NoDevice(reason)) => {
            println!("no GPU: {reason}");
            assert!(!reason.is_empty());
        }
        Err(e) => panic!("probe(0) should give a device or NoDevice, got {e:?}"),
    }
    // An ordinal no machine has.
    match cuda::probe(4096) {
        Err(RuntimeError::NoDevice(reason)) => assert!(!reason.is_empty()),
        other => panic!("probe(4096) should be NoDevice, got {other:?}"),
    }
    match CudaBackend::new(4096, Options::default()) {
        Err(RuntimeError::NoDevice(reason)) => assert!(!reason.is_empty()),
        Err(e) => panic!("CudaBackend::new(4096) should be NoDevice, got {e:?}"),
        Ok(_) => panic!("CudaBackend::new(4096) found a GPU 4096"),
    }
}

fn buffer(
    name: &str,
    rows: RowSpace,
    dims: &[usize],
    kind: BufferKind,
    slot: Option<u32>,
) -> Buffer {
    Buffer { name: name.into(), rows, shape: Shape(dims.to_vec()), dtype: DType::F32, kind, slot }
}

/// `t1 = h[src] @ W[rel]` (a GEMM over edges), then a node-parallel traversal (its body does not
/// matter to the estimate) writing `t2` and `out`; `t1` and `t2` share slot 0.
fn hand_plan() -> Plan {
    let mut weights = Arena::new();
    let w = weights.push(Weight {
        name: "W".into(),
        kind: WeightKind::PerRelation,
        shape: Shape(vec![4, 2]),
        init: Init::Glorot,
    });
    let mut buffers = Arena::new();
    let h = buffers.push(buffer("h", RowSpace::Nodes, &[4], BufferKind::Input("h".into()), None));
    let wb = buffers.push(buffer("W", RowSpace::Relations, &[4, 2], BufferKind::Weight(w), None));
    let t1 = buffers.push(buffer("t1", RowSpace::Edges, &[2], BufferKind::Temp, Some(0)));
    buffers.push(buffer("t2", RowSpace::Nodes, &[2], BufferKind::Temp, Some(0)));
    let out =
        buffers.push(buffer("out", RowSpace::Nodes, &[2], BufferKind::Output("out".into()), None));
    let mut kernels = Arena::new();
    kernels.push(Kernel::Gemm(Gemm {
        rows: RowSpace::Edges,
        segment: Select::Relation,
        a: h,
        gather: RowIndex::Node(Endpoint::Src),
        b: wb,
        form: LinearForm::Plain { k: 4, n: 2 },
        epilogue: vec![],
        c: t1,
        store: StoreMode::Write,
    }));
    kernels.push(Kernel::Traversal(Traversal { schedule: Schedule::NodeParallel, body: vec![] }));
    Plan {
        name: "hand".into(),
        weights,
        buffers,
        kernels,
        outputs: vec![("out".into(), out)],
        ..Plan::default()
    }
}

fn hand_program(gemm_segmentation: Segmentation) -> CudaProgram {
    let b = |i| Param::Buffer(BufferId::new(i));
    CudaProgram {
        model: "hand".into(),
        source: String::new(),
        kernels: vec![
            KernelLaunch {
                kernel: KernelId::new(0),
                name: "gemm_hand_0".into(),
                params: vec![
                    b(0),
                    b(1),
                    b(2),
                    Param::Array(GraphArray::Src),
                    Param::Count(RowSpace::Edges),
                    Param::GemmOrder,
                    Param::GemmTiles,
                ],
                grid: Grid::Gemm { tile_m: 2, y_blocks: 1 },
                block: 128,
                segmentation: Some(gemm_segmentation),
            },
            KernelLaunch {
                kernel: KernelId::new(1),
                name: "traversal_hand_1".into(),
                params: vec![
                    b(2),
                    b(3),
                    b(4),
                    Param::Array(GraphArray::CsrOffsets),
                    Param::Array(GraphArray::CsrEdges),
                    Param::Count(RowSpace::Nodes),
                ],
                grid: Grid::Rows { space: RowSpace::Nodes, rows_per_block: 4 },
                block: 128,
                segmentation: None,
            },
        ],
    }
}

#[test]
fn memory_estimate_matches_a_hand_count() {
    let (plan, g) = (hand_plan(), hand_graph());
    let est =
        cuda::estimate_program_memory(&plan, &g, &hand_program(Segmentation::EdgesByRelation))
            .unwrap_or_else(|e| panic!("{e}"));
    // f32 storages: h 7 x 4, W 3 x 8, slot 0 max(t1 8 x 2, t2 7 x 2) = 16, out 7 x 2.
    // u32 arrays: src 8, csr offsets 8 (N + 1), csr edges 8; GEMM order 8 (all edges);
    // tiles of 2 rows: r0 has 4 edges (2 tiles), r1 4 (2 tiles), r2 none: 4 x 3 values.
    let want = [28, 24, 16, 14, 8, 8, 8, 8, 12].iter().map(|n| n * 4).sum::<usize>();
    assert_eq!(est.total_bytes, want, "{:#?}", est.items);
    assert_eq!(est.items.len(), 9, "{:#?}", est.items);
    assert_eq!(est.items.iter().map(|i| i.1).sum::<usize>(), est.total_bytes);
    assert!(est.items.iter().any(|(n, b)| n.contains("slot 0")
        && n.contains("`t1`")
        && n.contains("`t2`")
        && *b == 64));
}

#[test]
fn too_little_device_memory_is_an_error_naming_the_bytes() {
    let (plan, g) = (hand_plan(), hand_graph());
    let est =
        cuda::estimate_program_memory(&plan, &g, &hand_program(Segmentation::EdgesByRelation))
            .unwrap_or_else(|e| panic!("{e}"));
    // 504 bytes (the hand count above) fit in exactly that much, not in one byte less.
    assert_eq!(est.total_bytes, 504);
    assert!(est.check_fits(504).is_ok());
    match est.check_fits(503) {
        Err(e @ RuntimeError::DeviceMemory { needed: 504, available: 503, .. }) => {
            let text = e.to_string();
            assert!(text.contains("needs 504 B") && text.contains("only 503 B"), "{text}");
            // The biggest item is the input `h` (112 bytes).
            assert!(text.contains("`h`"), "{text}");
        }
        other => panic!("expected DeviceMemory, got {other:?}"),
    }
}

#[test]
fn a_segmentation_the_runtime_does_not_build_is_an_internal_error() {
    let (plan, g) = (hand_plan(), hand_graph());
    let r = cuda::estimate_program_memory(&plan, &g, &hand_program(Segmentation::Single));
    assert!(matches!(&r, Err(RuntimeError::Internal(m)) if m.contains("segmentation")), "{r:?}");
}

#[test]
fn relation_types_must_be_declared_when_a_kernel_reads_them() {
    let (plan, g) = (hand_plan(), hand_graph());
    let mut program = hand_program(Segmentation::EdgesByRelation);
    program.kernels[1].params.push(Param::Array(GraphArray::RelationType(Endpoint::Dst)));
    let r = cuda::estimate_program_memory(&plan, &g, &program);
    assert!(matches!(&r, Err(RuntimeError::Unsupported(m)) if m.contains("`r0`")), "{r:?}");
}

// ---------------------------------------------------------------- NVRTC

const TINY: &str = r#"extern "C" __global__ void scale(float* x, float a, unsigned n) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= a;
}
"#;

const BROKEN: &str = r#"extern "C" __global__ void broken(float* x, unsigned n) {
    unsigned i = threadIdx.x;
    if (i < n) x[i] = undefined_name;
}
"#;

/// NVRTC's version, or `None` after printing why the NVRTC tests are skipped (a failure when
/// `PIGEON_REQUIRE_NVRTC=1`).
fn nvrtc() -> Option<(i32, i32)> {
    match cuda::nvrtc_version() {
        Ok(v) => Some(v),
        Err(e) => {
            assert!(
                std::env::var("PIGEON_REQUIRE_NVRTC").as_deref() != Ok("1"),
                "PIGEON_REQUIRE_NVRTC=1 but NVRTC is unavailable: {e}"
            );
            println!("skipped: {e}");
            None
        }
    }
}

#[test]
fn nvrtc_compiles_a_small_kernel_for_sm80_and_sm90() {
    let Some(version) = nvrtc() else { return };
    println!("NVRTC {}.{}", version.0, version.1);
    for arch in ["sm_80", "sm_90"] {
        let ptx = cuda::compile_ptx(TINY, arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
        assert!(ptx.contains(".entry scale"), "{arch}: {ptx}");
        assert!(ptx.contains(&format!(".target {arch}")), "{arch}: {ptx}");
    }
    let bad_arch = cuda::compile_ptx(TINY, "ampere");
    assert!(matches!(bad_arch, Err(RuntimeError::Unsupported(_))), "{bad_arch:?}");
}

#[test]
fn nvrtc_errors_carry_the_log_and_numbered_source() {
    if nvrtc().is_none() {
        return;
    }
    match cuda::compile_ptx(BROKEN, "sm_90") {
        Err(e @ RuntimeError::Nvrtc { .. }) => {
            let msg = e.to_string();
            let RuntimeError::Nvrtc { log, excerpt } = &e else { unreachable!() };
            assert!(log.contains("undefined_name"), "{log}");
            // Line 3 holds the error, marked and numbered, with its neighbours.
            assert!(excerpt.contains("> 3 |     if (i < n) x[i] = undefined_name;"), "{excerpt}");
            assert!(excerpt.contains("  2 |     unsigned i = threadIdx.x;"), "{excerpt}");
            assert!(msg.contains(log.as_str()) && msg.contains(excerpt.as_str()), "{msg}");
        }
        other => panic!("expected an NVRTC error, got {other:?}"),
    }
}

// ---------------------------------------------------------------- with a GPU

/// Every zoo model: the `.rgnn` files of `examples/`.
fn models() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let names = pigeon_frontend::model_files(std::path::Path::new(dir)).expect("examples/");
    assert!(names.len() >= 9, "the zoo shrank: {names:?}");
    names
}

/// The zoo models and their settings, compiled for `g`.
fn zoo_plans(g: &HeteroGraph) -> Vec<(String, pigeon_ir::Module, Plan)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut out = Vec::new();
    for model in &models() {
        let path = format!("{root}/{model}.rgnn");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let src = pigeon_frontend::SourceFile { name: path.clone(), text };
        let module =
            pigeon_frontend::compile(&src, None, &[]).unwrap_or_else(|d| panic!("{path}: {d:?}"));
        let stats = pigeon_runtime::layout::graph_stats(g);
        for (setting, opts) in [
            ("default", pigeon_passes::Options::default()),
            ("-O0", pigeon_passes::Options::none()),
        ] {
            let compiled = pigeon_passes::compile(&module, &stats, &opts, None)
                .unwrap_or_else(|e| panic!("{model} {setting}: {e}"));
            let plan = compiled.plan.unwrap_or_else(|| panic!("{model} {setting}: no plan"));
            out.push((format!("{model} {setting}"), compiled.module, plan));
        }
    }
    out
}

#[test]
fn zoo_models_on_the_gpu_match_the_cpu_back_end() {
    let backend = match CudaBackend::new(0, Options::default()) {
        Ok(b) => b,
        Err(e) => {
            println!("skipped: {e}");
            return;
        }
    };
    println!("running on {:?}", backend.device());
    let graphs = [
        hand_graph(),
        pigeon_runtime::load_graph("synthetic:nodes=300,edges=3000,relations=6,ntypes=3,seed=4")
            .unwrap_or_else(|e| panic!("{e}")),
    ];
    let cpu = pigeon_runtime::cpu::CpuBackend::new(pigeon_runtime::cpu::Precision::F64);
    let mut failures = Vec::new();
    for g in &graphs {
        for (name, module, plan) in zoo_plans(g) {
            let weights = pigeon_runtime::WeightStore::init(
                &module,
                g.num_relations(),
                g.num_node_types(),
                7,
            );
            let (inputs, _) =
                pigeon_runtime::bind_inputs(&module, g, 3).unwrap_or_else(|e| panic!("{e}"));
            let want =
                cpu.execute(&plan, g, &inputs, &weights).unwrap_or_else(|e| panic!("{name}: {e}"));
            match backend.execute(&plan, g, &inputs, &weights) {
                Err(e) => failures.push(format!("{name} on {}: {e}", g.name)),
                Ok(got) => {
                    for ((n, w), (_, c)) in want.outputs.iter().zip(&got.outputs) {
                        let scale = w.data.iter().fold(1.0f64, |m, x| m.max(x.abs()));
                        match w.max_abs_diff(c) {
                            Some(d) if d <= 1e-4 * scale => {}
                            d => failures.push(format!(
                                "{name} on {}: output `{n}` differs by {d:?} (scale {scale})",
                                g.name
                            )),
                        }
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// Hand-written kernels following `pigeon_codegen::spec` for a hand plan, so the runtime's
/// binding, zeroing, tiles, row orders, graph arrays and timing are tested on a GPU whatever
/// the state of the generators:
///
/// - k0, edge-parallel: `out[dst] += h[src]` (atomics into a zeroed output);
/// - k1, GEMM by node type (no order): `y[v] = out[v] @ A[type(v)]`;
/// - k2, GEMM by relation (edge order, empty relation r2): `z[dst] += h[src] @ W[rel]`.
const HAND_CU: &str = r#"extern "C" __global__ void traversal_hand_0(const float* b0, float* b1,
        const unsigned* src, const unsigned* dst, unsigned n_edges) {
    unsigned e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n_edges) return;
    for (int j = 0; j < 2; j++) atomicAdd(&b1[dst[e] * 2 + j], b0[src[e] * 2 + j]);
}
extern "C" __global__ void gemm_hand_1(const float* b1, const float* b2, float* b3,
        const unsigned* tiles) {
    unsigned t = blockIdx.x, start = tiles[3 * t], end = tiles[3 * t + 1], seg = tiles[3 * t + 2];
    for (unsigned p = start + threadIdx.x; p < end; p += blockDim.x)
        for (int n = 0; n < 3; n++) {
            float acc = 0.0f;
            for (int k = 0; k < 2; k++) acc += b1[p * 2 + k] * b2[seg * 6 + k * 3 + n];
            b3[p * 3 + n] = acc;
        }
}
extern "C" __global__ void gemm_hand_2(const float* b0, const float* b4, float* b5,
        const unsigned* order, const unsigned* tiles, const unsigned* src, const unsigned* dst) {
    unsigned t = blockIdx.x, start = tiles[3 * t], end = tiles[3 * t + 1], seg = tiles[3 * t + 2];
    for (unsigned p = start + threadIdx.x; p < end; p += blockDim.x) {
        unsigned e = order[p];
        for (int n = 0; n < 2; n++) {
            float acc = 0.0f;
            for (int k = 0; k < 2; k++) acc += b0[src[e] * 2 + k] * b4[seg * 4 + k * 2 + n];
            atomicAdd(&b5[dst[e] * 2 + n], acc);
        }
    }
}
"#;

fn hand_kernel_plan(g: &HeteroGraph) -> (Plan, pigeon_runtime::WeightStore, CudaProgram) {
    use pigeon_ir::plan::{Level, Stmt, StmtOp};
    let mut m = pigeon_ir::Module::default();
    let glorot = |name: &str, kind, dims: &[usize]| Weight {
        name: name.into(),
        kind,
        shape: Shape(dims.to_vec()),
        init: Init::Glorot,
    };
    let a = m.weights.push(glorot("A", WeightKind::PerNodeType, &[2, 3]));
    let w = m.weights.push(glorot("W", WeightKind::PerRelation, &[2, 2]));
    let store = pigeon_runtime::WeightStore::init(&m, g.num_relations(), g.num_node_types(), 5);
    let mut buffers = Arena::new();
    let out_kind = |n: &str| BufferKind::Output(n.into());
    let h = buffers.push(buffer("h", RowSpace::Nodes, &[2], BufferKind::Input("h".into()), None));
    let out = buffers.push(buffer("out", RowSpace::Nodes, &[2], out_kind("out"), None));
    let ab = buffers.push(buffer("A", RowSpace::NodeTypes, &[2, 3], BufferKind::Weight(a), None));
    let y = buffers.push(buffer("y", RowSpace::Nodes, &[3], out_kind("y"), None));
    let wb = buffers.push(buffer("W", RowSpace::Relations, &[2, 2], BufferKind::Weight(w), None));
    let z = buffers.push(buffer("z", RowSpace::Nodes, &[2], out_kind("z"), None));
    let stmt = |op, dims: &[usize]| Stmt { level: Level::Edge, op, shape: Shape(dims.to_vec()) };
    let mut kernels = Arena::new();
    kernels.push(Kernel::Traversal(Traversal {
        schedule: Schedule::EdgeParallel,
        body: vec![
            stmt(StmtOp::Load { buf: h, index: RowIndex::Node(Endpoint::Src) }, &[2]),
            stmt(
                StmtOp::Store {
                    buf: out,
                    x: pigeon_ir::plan::RegId::new(0),
                    mode: StoreMode::AddIntoDst,
                },
                &[],
            ),
        ],
    }));
    let gemm = |rows, segment, a, gather, b, k, n, c, store| {
        Kernel::Gemm(Gemm {
            rows,
            segment,
            a,
            gather,
            b,
            form: LinearForm::Plain { k, n },
            epilogue: vec![],
            c,
            store,
        })
    };
    kernels.push(gemm(
        RowSpace::Nodes,
        Select::NodeType,
        out,
        RowIndex::This,
        ab,
        2,
        3,
        y,
        StoreMode::Write,
    ));
    kernels.push(gemm(
        RowSpace::Edges,
        Select::Relation,
        h,
        RowIndex::Node(Endpoint::Src),
        wb,
        2,
        2,
        z,
        StoreMode::AddIntoDst,
    ));
    let plan = Plan {
        name: "hand".into(),
        weights: m.weights,
        buffers,
        kernels,
        outputs: vec![("out".into(), out), ("y".into(), y), ("z".into(), z)],
        ..Plan::default()
    };
    let b = |i| Param::Buffer(BufferId::new(i));
    let launch = |k, name: &str, params, grid, segmentation| KernelLaunch {
        kernel: KernelId::new(k),
        name: name.into(),
        params,
        grid,
        block: 32,
        segmentation,
    };
    let (src, dst) = (Param::Array(GraphArray::Src), Param::Array(GraphArray::Dst));
    let program = CudaProgram {
        model: "hand".into(),
        source: HAND_CU.into(),
        kernels: vec![
            launch(
                0,
                "traversal_hand_0",
                vec![b(0), b(1), src, dst, Param::Count(RowSpace::Edges)],
                Grid::Rows { space: RowSpace::Edges, rows_per_block: 32 },
                None,
            ),
            launch(
                1,
                "gemm_hand_1",
                vec![b(1), b(2), b(3), Param::GemmTiles],
                Grid::Gemm { tile_m: 2, y_blocks: 1 },
                Some(Segmentation::NodesByType),
            ),
            launch(
                2,
                "gemm_hand_2",
                vec![b(0), b(4), b(5), Param::GemmOrder, Param::GemmTiles, src, dst],
                Grid::Gemm { tile_m: 3, y_blocks: 1 },
                Some(Segmentation::EdgesByRelation),
            ),
        ],
    };
    (plan, store, program)
}

#[test]
fn hand_written_kernels_on_the_gpu_match_the_cpu_back_end() {
    let backend = match CudaBackend::new(0, Options::default()) {
        Ok(b) => b,
        Err(e) => {
            println!("skipped: {e}");
            return;
        }
    };
    let g = hand_graph();
    let (plan, weights, program) = hand_kernel_plan(&g);
    let h: Vec<f64> = (0..14).map(|i| (i as f64 * 0.37).sin()).collect();
    let inputs = vec![(
        "h".to_string(),
        pigeon_runtime::Tensor::from_vec(7, Shape(vec![2]), h).unwrap_or_else(|e| panic!("{e}")),
    )];
    let cpu = pigeon_runtime::cpu::CpuBackend::new(pigeon_runtime::cpu::Precision::F64);
    let want = cpu.execute(&plan, &g, &inputs, &weights).unwrap_or_else(|e| panic!("{e}"));
    // Twice: the second run takes the module from the back end's cache.
    for run in 0..2 {
        let got = backend
            .execute_program(&plan, &program, &g, &inputs, &weights)
            .unwrap_or_else(|e| panic!("run {run}: {e}"));
        for ((n, w), (m, c)) in want.outputs.iter().zip(&got.outputs) {
            assert_eq!(n, m);
            let d = w.max_abs_diff(c).unwrap_or(f64::INFINITY);
            assert!(
                d <= 1e-5,
                "run {run}: output `{n}` differs by {d}: {:?} vs {:?}",
                w.data,
                c.data
            );
        }
        assert_eq!(got.profile.per_kernel.len(), 3);
        assert!(got.profile.peak_bytes > 0);
        println!("run {run}: {:?}", got.profile);
    }
}
