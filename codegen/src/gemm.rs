//! The GEMM template: `C[rows] (+)= epilogue(A[gather(rows)] x B[segment(rows)])`, with the
//! semantics of the CPU back end's `runtime/src/cpu/gemm.rs`.
//!
//! The tiled loops are fixed C++ in `cuda/gemm.cuh` (`pg::gemm::run`); per kernel this module
//! writes a small functor that states the shapes as constants and says how a position finds
//! its row (the runtime's order), its A row (the gather), its C row (itself, or its destination
//! or source node when adding into nodes: `add_into_dst`, `add_into_src`) and how an output
//! element is post-processed (the fused epilogue), then an `extern "C"` kernel that builds the functor and calls the template:
//!
//! ```text
//! struct gemm_rgcn_0_f {
//!     static constexpr unsigned K = 64, N = 64, BATCH = 1;
//!     ...
//!     __device__ __forceinline__ unsigned a_row(unsigned i) const { return compact_src_node[i]; }
//!     ...
//! };
//! extern "C" __global__ void __launch_bounds__(256, 4) gemm_rgcn_0(...) {
//!     const gemm_rgcn_0_f f{b0, b2, b3, compact_src_node};
//!     pg::gemm::run<pg::gemm::Simt>(f, tiles, n_compact_src);
//! }
//! ```
//!
//! The segmentation is decided statically, exactly as the CPU back end's `segments` does.

mod tile;

use crate::error::{internal, Result};
use crate::index::{broadcast_expr, row_expr};
use crate::ops::unary_expr;
use crate::params::{param_name, Params};
use crate::spec::{GemmMath, Grid, KernelLaunch, Options, Param, Segmentation};
use crate::writer::Writer;
use pigeon_ir::plan::{Buffer, Epilogue, Gemm, KernelId, Plan, RowIndex, RowSpace, StoreMode};
use pigeon_ir::{shape, Endpoint, Select, Shape};
use tile::{TileConfig, THREADS, TILE_M};

/// The fixed tiled GEMM loops, inlined once per translation unit after `common.cuh`.
pub const GEMM_CUH: &str = include_str!("../cuda/gemm.cuh");

/// A GEMM's operands and decisions, resolved before any code is written.
struct Resolved<'p> {
    a: &'p Buffer,
    c: &'p Buffer,
    /// The product's per-row shape (the epilogue broadcasts against it).
    out: Shape,
    seg: Segmentation,
    cfg: TileConfig,
}

fn buffer(plan: &Plan, id: pigeon_ir::plan::BufferId) -> Result<&Buffer> {
    plan.buffers.get(id).ok_or_else(|| internal(format!("GEMM uses a missing buffer {id}")))
}

/// Checks the operands as the CPU back end does and decides the segmentation and tiles.
fn resolve<'p>(plan: &'p Plan, g: &Gemm) -> Result<Resolved<'p>> {
    let (a, b, c) = (buffer(plan, g.a)?, buffer(plan, g.b)?, buffer(plan, g.c)?);
    let (out, form) = shape::linear(&a.shape, &b.shape)
        .ok_or_else(|| internal(format!("cannot multiply {} by {}", a.shape, b.shape)))?;
    if form != g.form || out.numel() != c.shape.numel() {
        return Err(internal(format!(
            "{} x {} is {form:?} giving {out}, but the kernel says {:?} into {}",
            a.shape, b.shape, g.form, c.shape
        )));
    }
    let seg = segmentation(plan, g.segment, g.rows, b.rows)?;
    let cfg = TileConfig::new(&form, a.shape.numel(), b.shape.numel(), c.shape.numel());
    Ok(Resolved { a, c, out, seg, cfg })
}

/// How `rows` are grouped by the slice of a `b_rows` buffer they select by `segment`, as the
/// CPU back end's `segments` (for the GEMM's B, and for the weight gradient's C).
pub(crate) fn segmentation(
    plan: &Plan,
    segment: Select,
    rows: RowSpace,
    b_rows: RowSpace,
) -> Result<Segmentation> {
    // The selection must resolve (the CPU back end resolves it before segmenting).
    let mut scratch = Params::new(plan, []);
    row_expr(&mut scratch, RowIndex::Select(segment), rows, b_rows, "i")?;
    let identity = match segment {
        Select::Same => true,
        Select::Relation => rows == RowSpace::Relations && b_rows == RowSpace::Relations,
        Select::NodeType => rows == RowSpace::NodeTypes && b_rows == RowSpace::NodeTypes,
        Select::SrcType | Select::DstType => false,
    };
    Ok(match (rows, segment) {
        _ if b_rows == RowSpace::One => Segmentation::Single,
        _ if identity => Segmentation::PerRow,
        (RowSpace::Edges, Select::Relation) => Segmentation::EdgesByRelation,
        (RowSpace::Compact(ep), Select::Relation) => Segmentation::CompactByRelation(ep),
        (RowSpace::Nodes, Select::NodeType) => Segmentation::NodesByType,
        (_, sel) => Segmentation::Sorted(sel),
    })
}

/// The C row of iteration row `i`, as a C expression.
fn out_row(params: &mut Params, g: &Gemm, c_rows: RowSpace) -> Result<String> {
    match (g.store, g.rows, c_rows) {
        (StoreMode::Write, r, c) if r == c => Ok("i".into()),
        (
            StoreMode::AddIntoDst,
            RowSpace::Edges | RowSpace::Compact(Endpoint::Dst),
            RowSpace::Nodes,
        ) => row_expr(params, RowIndex::Node(Endpoint::Dst), g.rows, c_rows, "i"),
        (
            StoreMode::AddIntoSrc,
            RowSpace::Edges | RowSpace::Compact(Endpoint::Src),
            RowSpace::Nodes,
        ) => row_expr(params, RowIndex::Node(Endpoint::Src), g.rows, c_rows, "i"),
        (m, r, c) => Err(internal(format!("cannot {m:?} {r:?} rows into a {c:?} buffer"))),
    }
}

/// Writes the kernel for `g` and returns how to launch it.
pub(crate) fn emit(
    w: &mut Writer,
    plan: &Plan,
    id: KernelId,
    g: &Gemm,
    name: &str,
    options: &Options,
) -> Result<KernelLaunch> {
    let r = resolve(plan, g)?;
    let mut params = Params::new(plan, [g.c]);
    let a = params.buffer(g.a);
    let b = params.buffer(g.b);
    let c = params.buffer(g.c);
    let row =
        if r.seg.has_order() { format!("{}[p]", params.add(Param::GemmOrder)) } else { "p".into() };
    let tiles = params.add(Param::GemmTiles);
    let rows = params.count(g.rows);
    let a_row = row_expr(&mut params, g.gather, g.rows, r.a.rows, "i")?;
    let out = out_row(&mut params, g, r.c.rows)?;
    let mut epilogue = Vec::with_capacity(g.epilogue.len());
    for e in &g.epilogue {
        epilogue.push(epilogue_line(&mut params, plan, g, &r.out, e)?);
    }

    let functor = format!("{name}_f");
    w.line(format!("// {name}: {:?} rows, {:?}, {:?}", g.rows, r.seg, g.form));
    w.open(format!("struct {functor}"));
    constants(w, &r.cfg, g.store.accumulates());
    // Members: the operands, then every other pointer the functions read, by parameter name.
    w.line("const float* a;");
    w.line("const float* b;");
    w.line("float* c;");
    let mut members = vec![a, b, c];
    let epilogue_bufs: Vec<_> = g.epilogue.iter().filter_map(epilogue_buffer).collect();
    for p in params_list(&params) {
        let ty = match p {
            Param::Buffer(buf) if epilogue_bufs.contains(&buf) => "const float*",
            Param::Buffer(_) => continue,
            Param::Array(_) | Param::GemmOrder => "const unsigned*",
            Param::Count(_) | Param::GemmTiles => continue,
        };
        let name = param_name(p);
        w.line(format!("{ty} {name};"));
        members.push(name);
    }
    let f = "__device__ __forceinline__";
    w.line(format!("{f} unsigned row(unsigned p) const {{ return {row}; }}"));
    w.line(format!("{f} unsigned a_row(unsigned i) const {{ return {a_row}; }}"));
    w.line(format!("{f} unsigned out_row(unsigned i) const {{ return {out}; }}"));
    w.open(format!("{f} float epilogue(unsigned i, unsigned col, float v) const"));
    for line in &epilogue {
        w.line(line);
    }
    w.line("return v;");
    w.close();
    w.close_with(";");

    let bounds = format!("__launch_bounds__({THREADS}, {})", r.cfg.min_blocks());
    w.open(format!("extern \"C\" __global__ void {bounds} {name}({})", params.signature()));
    w.line(format!("const {functor} f{{{}}};", members.join(", ")));
    w.line(format!("pg::gemm::run<pg::gemm::{}>(f, {tiles}, {rows});", engine(options.gemm_math)));
    w.close();

    Ok(KernelLaunch {
        kernel: id,
        name: name.to_string(),
        params: params.into_list(),
        grid: Grid::Gemm { tile_m: TILE_M as u32, y_blocks: r.cfg.y_blocks() as u32 },
        block: THREADS as u32,
        segmentation: Some(r.seg),
    })
}

/// The parameters collected so far (`Params` hands its list out only by value).
fn params_list(params: &Params) -> Vec<Param> {
    params.clone().into_list()
}

fn epilogue_buffer(e: &Epilogue) -> Option<pigeon_ir::plan::BufferId> {
    match e {
        Epilogue::Scale { buf, .. } | Epilogue::Add { buf, .. } => Some(*buf),
        Epilogue::Unary(_) => None,
    }
}

fn engine(math: GemmMath) -> &'static str {
    match math {
        GemmMath::Simt => "Simt",
        GemmMath::Tf32 => "Tf32",
        GemmMath::Bf16 => "Bf16",
    }
}

/// The functor's compile-time constants (see the head of `gemm.cuh`).
fn constants(w: &mut Writer, c: &TileConfig, accumulate: bool) {
    let (k, n, batch) = (c.k, c.n, c.batch);
    w.line(format!("static constexpr unsigned K = {k}, N = {n}, BATCH = {batch};"));
    w.line(format!(
        "static constexpr unsigned A_WIDTH = {}, B_SLICE = {}, B_BATCH = {}, C_WIDTH = {};",
        c.a_width, c.b_slice, c.b_batch, c.c_width
    ));
    w.line(format!("static constexpr unsigned TILE_N = {};", c.tile_n));
    w.line(format!(
        "static constexpr bool VEC_A = {}, VEC_B = {}, VEC_C = {}, ACCUMULATE = {accumulate};",
        c.vec_a, c.vec_b, c.vec_c
    ));
}

/// One epilogue step as a statement on `v` (element `col` of iteration row `i`).
fn epilogue_line(
    params: &mut Params,
    plan: &Plan,
    g: &Gemm,
    out: &Shape,
    e: &Epilogue,
) -> Result<String> {
    match e {
        Epilogue::Unary(op) => Ok(format!("v = {};", unary_expr(*op, "v"))),
        Epilogue::Scale { buf, index } | Epilogue::Add { buf, index } => {
            let b = buffer(plan, *buf)?;
            if shape::broadcast(out, &b.shape).as_ref() != Some(out) {
                return Err(internal(format!("epilogue row {} does not fit {out}", b.shape)));
            }
            let name = params.buffer(*buf);
            let row = row_expr(params, *index, g.rows, b.rows, "i")?;
            let width = b.shape.numel();
            let elem = broadcast_expr(&b.shape, out, "col");
            let x = format!("{name}[(unsigned long long)({row}) * {width}u + {elem}]");
            Ok(match e {
                Epilogue::Scale { .. } => format!("v = v * {x};"),
                _ => format!("v = v + {x};"),
            })
        }
    }
}
