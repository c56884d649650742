//! The edge loops of a node-parallel body, `G` edges at a time (statement modes in
//! `modes.rs`). Loop `p` walks the node's incoming edges in batches of `G`; lane `l` holds
//! edge `j = j0 + l` of the batch starting at `j0` (lanes past the last edge take the last edge
//! again, so every load is in bounds, and accumulate nothing):
//!
//! ```text
//! for (unsigned j0 = begin; j0 < end; j0 += G) {
//!     const unsigned j = j0 + lane;
//!     const unsigned e = csr_edges[j < end ? j : end - 1];
//!     <lane statements>; <row indices of the sequential loads>
//!     if (j < end) { <lane-parallel reduction steps> }
//!     const unsigned n = min(end - j0, (unsigned)G);
//!     for (unsigned t = 0; t < n; ++t) {
//!         const unsigned et = __shfl_sync(mask, e, t, G);
//!         const float r3_t = __shfl_sync(mask, r3, t, G);   // lane values it reads
//!         <sequential statements>; <sequential reduction steps>
//!     }
//! }
//! <merge of the lane-parallel reductions>
//! ```
//!
//! Edge-invariant statements are written once per node before the first loop ([`hoist`]).

use super::emit::Ctx;
use super::modes::Mode;
use super::passes::{operands, value_operands, Passes};
use super::reduce;
use crate::error::{internal, Result};
use crate::spec::GraphArray;
use crate::writer::Writer;
use pigeon_ir::plan::{BufferId, Level, RegId, StmtOp};
use pigeon_ir::EntityId;

/// Writes the invariant statements some loop evaluates, once per node.
pub(crate) fn hoist(w: &mut Writer, ctx: &mut Ctx, split: &Passes, modes: &[Mode]) -> Result<()> {
    ctx.hoisted = true;
    for i in 0..ctx.t.body.len() {
        if modes[i] == Mode::Invariant && split.evaluated.iter().any(|e| e[i]) {
            super::kernel::statement(w, ctx, i)?;
        }
    }
    ctx.hoisted = false;
    Ok(())
}

/// The statements of loop `p` in each part, and the reductions it accumulates.
struct Parts {
    lane: Vec<usize>,
    seq: Vec<usize>,
    lane_reductions: Vec<usize>,
    seq_reductions: Vec<usize>,
}

fn parts(ctx: &Ctx, split: &Passes, modes: &[Mode], p: usize) -> Result<Parts> {
    let eval = &split.evaluated[p];
    let pick = |m: Mode| (0..eval.len()).filter(|&i| eval[i] && modes[i] == m).collect();
    let (mut lane_reductions, mut seq_reductions) = (Vec::new(), Vec::new());
    for &r in &split.reductions[p] {
        let x = reduced(ctx, r)?;
        if reduce::lane_parallel(ctx, r)? && modes[x.index()] != Mode::Seq {
            lane_reductions.push(r);
        } else {
            seq_reductions.push(r);
        }
    }
    Ok(Parts { lane: pick(Mode::Lane), seq: pick(Mode::Seq), lane_reductions, seq_reductions })
}

/// The edge register reduction `r` reads.
fn reduced(ctx: &Ctx, r: usize) -> Result<RegId> {
    let ops = operands(&ctx.t.body[r].op);
    ops.first().copied().ok_or_else(|| internal(format!("r{r}: a reduction without operand")))
}

/// Loop `p` over the node's incoming edges, in batches of `G`.
pub(crate) fn edge_loop(
    w: &mut Writer,
    ctx: &mut Ctx,
    split: &Passes,
    modes: &[Mode],
    p: usize,
) -> Result<()> {
    let parts = parts(ctx, split, modes, p)?;
    w.line(format!("// edge loop {p}: lane l holds edge j0 + l of each batch of G"));
    for &r in &split.reductions[p] {
        reduce::begin(w, ctx, r)?;
    }
    let seq = seq_part(ctx, &parts, modes)?;
    let lane = lane_part(ctx, &parts, &seq.indices)?;
    let seq_uses_e = uses(&code_of(&seq.body), "et");
    let needs_e = seq_uses_e || uses(&code_of(&lane), "e");
    w.open("for (unsigned j0 = begin; j0 < end; j0 += G)");
    if needs_e || uses(&code_of(&lane), "j") {
        w.line("const unsigned j = j0 + lane;");
    }
    if needs_e {
        let edges = ctx.params.array(GraphArray::CsrEdges);
        w.line(format!("const unsigned e = {edges}[j < end ? j : end - 1];"));
    }
    lines(w, &lane);
    if !parts.seq.is_empty() || !parts.seq_reductions.is_empty() {
        w.line("const unsigned n = min(end - j0, (unsigned)G);");
        if seq.unroll > 1 {
            prefetched_edges(w, ctx, &seq)?;
        } else {
            w.open("for (unsigned t = 0; t < n; ++t)");
        }
        if seq_uses_e {
            w.line("const unsigned et = __shfl_sync(mask, e, t, G);");
        }
        for (ty, name, value) in &seq.shuffled {
            w.line(format!("const {ty} {name} = __shfl_sync(mask, {value}, t, G);"));
        }
        lines(w, &seq.body);
        w.close();
        if seq.unroll > 1 {
            w.close();
        }
    }
    w.close();
    for &r in &parts.lane_reductions {
        w.line(format!("// merge the lanes of {}", text(ctx, r)));
        reduce::merge(w, ctx, r)?;
    }
    Ok(())
}

fn text(ctx: &Ctx, i: usize) -> String {
    ctx.texts.get(i).cloned().unwrap_or_default()
}

/// The lane part: lane statements, the row indices the sequential part reads (`(statement,
/// expression)`), the lane-parallel reduction steps.
fn lane_part(ctx: &mut Ctx, parts: &Parts, indices: &[(usize, String)]) -> Result<String> {
    let mut w = Writer::new();
    ctx.edge_row = "e";
    ctx.lane_edges = true;
    for &i in &parts.lane {
        if matches!(ctx.t.body[i].op, StmtOp::Softmax { .. }) {
            w.line(format!("// {}", text(ctx, i)));
            reduce::softmax_value(&mut w, ctx, i)?;
        } else {
            super::kernel::statement(&mut w, ctx, i)?;
        }
    }
    ctx.lane_edges = false;
    for (i, expr) in indices {
        w.line(format!("const unsigned ix{i} = {expr};"));
    }
    for &r in &parts.lane_reductions {
        w.line(format!("// accumulate {}", text(ctx, r)));
        reduce::lane_step(&mut w, ctx, r)?;
    }
    Ok(w.finish())
}

/// The sequential part of a loop: its statements for edge `et`, the values it shuffles from
/// lane `t` (`(type, name, lane value)`), the row indices the lane part computes for it, and
/// the wide loads fetched `unroll` edges at a time before the statements run (`(statement,
/// buffer, width)`; none when `unroll` is 1).
struct Seq {
    body: String,
    shuffled: Vec<(&'static str, String, String)>,
    indices: Vec<(usize, String)>,
    unroll: usize,
    fetched: Vec<(usize, BufferId, usize)>,
}

/// Registers per lane the rows fetched ahead may take.
const FETCH_REGS: usize = 16;

/// How many edges' rows to fetch ahead, given the slots one edge's fetched rows take: 4 (or 2)
/// when they fit [`FETCH_REGS`], else 1 (no fetching ahead).
pub(crate) fn unroll_for(slots: usize) -> usize {
    [4, 2].into_iter().find(|u| slots > 0 && u * slots <= FETCH_REGS).unwrap_or(1)
}

/// Opens the loop over the batch's edges `unroll` at a time, after fetching the rows of the
/// wide loads of those edges into `fI[u]` (the batch's last edge again past `n`), so that the
/// loads of several edges are in flight together; then opens the loop over those edges (`t`).
fn prefetched_edges(w: &mut Writer, ctx: &mut Ctx, seq: &Seq) -> Result<()> {
    let u = seq.unroll;
    w.open(format!("for (unsigned t0 = 0; t0 < n; t0 += {u})"));
    w.line(format!("// rows of edges t0 .. t0 + {} first, so that their loads overlap", u - 1));
    for &(i, _, width) in &seq.fetched {
        w.line(format!("float f{i}[{u}][{}];", ctx.slots(width)));
    }
    w.line("#pragma unroll");
    w.open(format!("for (int u = 0; u < {u}; ++u)"));
    w.line("const unsigned t = min(t0 + u, n - 1);");
    for &(i, buf, width) in &seq.fetched {
        w.line(format!("const unsigned ix{i}_t = __shfl_sync(mask, ix{i}, t, G);"));
        w.line(format!("const size_t at{i} = (size_t)(ix{i}_t) * {width};"));
        super::emit::open_slots(w, ctx, width);
        let v = ctx.read(buf, &format!("at{i} + i"));
        if ctx.padded(width) {
            w.line(format!("f{i}[u][s] = i < {width} ? {v} : 0.0f;"));
        } else {
            w.line(format!("f{i}[u][s] = {v};"));
        }
        w.close();
    }
    w.close();
    w.line("#pragma unroll");
    w.open(format!("for (int u = 0; u < {u}; ++u)"));
    w.line("const unsigned t = t0 + u;");
    w.line("if (t >= n) break;");
    Ok(())
}

fn seq_part(ctx: &mut Ctx, parts: &Parts, modes: &[Mode]) -> Result<Seq> {
    let mut shuffled = Vec::new();
    let mut indices = Vec::new();
    let mut reads: Vec<usize> = Vec::new();
    for &i in &parts.seq {
        reads.extend(value_operands(&ctx.t.body[i].op).iter().map(|r| r.index()));
    }
    for &r in &parts.seq_reductions {
        reads.push(reduced(ctx, r)?.index());
    }
    reads.sort_unstable();
    reads.dedup();
    for r in reads {
        if modes[r] == Mode::Lane {
            let name = format!("r{r}_t");
            ctx.names.insert(r, name.clone());
            shuffled.push(("float", name, format!("r{r}")));
        }
    }
    // Row indices of sequential loads and matrix-vector products, computed by the lanes;
    // wide loads with one are fetched ahead.
    ctx.edge_row = "e";
    let mut fetched = Vec::new();
    for &i in &parts.seq {
        if let Some(expr) = edge_index(ctx, i)? {
            indices.push((i, expr));
            if let StmtOp::Load { buf, .. } = ctx.t.body[i].op {
                fetched.push((i, buf, ctx.buffer_width(buf)?));
                continue;
            }
            let name = format!("ix{i}_t");
            shuffled.push(("unsigned", name.clone(), format!("ix{i}")));
            ctx.rows.insert(i, name);
        }
    }
    // A wide matrix-vector product per edge is long code with many live values: two edges
    // at a time (four spill in SimpleHGN with 4 heads).
    let heavy = parts
        .seq
        .iter()
        .any(|&i| matches!(ctx.t.body[i].op, StmtOp::MatVec { .. }) && ctx.regs[i].width > 1);
    let slots = fetched.iter().map(|&(_, _, width)| ctx.slots(width)).sum();
    let unroll = unroll_for(slots).min(if heavy { 2 } else { 4 });
    for &(i, _, _) in &fetched {
        if unroll > 1 {
            ctx.preloaded.insert(i, format!("f{i}[u]"));
        } else {
            let name = format!("ix{i}_t");
            shuffled.push(("unsigned", name.clone(), format!("ix{i}")));
            ctx.rows.insert(i, name);
        }
    }
    if unroll == 1 {
        fetched.clear();
    }
    ctx.edge_row = "et";
    let mut w = Writer::new();
    for &i in &parts.seq {
        if matches!(ctx.t.body[i].op, StmtOp::Softmax { .. }) {
            w.line(format!("// {}", text(ctx, i)));
            reduce::softmax_value(&mut w, ctx, i)?;
        } else {
            super::kernel::statement(&mut w, ctx, i)?;
        }
    }
    for &r in &parts.seq_reductions {
        w.line(format!("// accumulate {}", text(ctx, r)));
        reduce::step(&mut w, ctx, r)?;
    }
    ctx.names.clear();
    ctx.rows.clear();
    ctx.preloaded.clear();
    ctx.edge_row = "e";
    Ok(Seq { body: w.finish(), shuffled, indices, unroll, fetched })
}

/// The row index expression of a load or matrix-vector product `i` whose row depends on the
/// edge (the edge itself, or a row found through a graph array), evaluated for the lane's edge
/// `e`; `None` for other statements.
fn edge_index(ctx: &mut Ctx, i: usize) -> Result<Option<String>> {
    let level = ctx.t.body[i].level;
    let (buf, index) = match ctx.t.body[i].op {
        StmtOp::Load { buf, index } => (buf, index),
        StmtOp::MatVec { w, select, .. } => (w, pigeon_ir::plan::RowIndex::Select(select)),
        _ => return Ok(None),
    };
    if level != Level::Edge {
        return Ok(None);
    }
    let rows = ctx.plan.buffers.get(buf).map(|b| b.rows);
    let rows = rows.ok_or_else(|| internal(format!("no buffer {buf}")))?;
    let expr = ctx.index_expr(i, level, index, rows)?;
    Ok((expr == "e" || expr.contains("[e]")).then_some(expr))
}

/// Appends the lines of `text` to `w` at its indent.
fn lines(w: &mut Writer, text: &str) {
    for line in text.lines() {
        w.line(line);
    }
}

/// `text` without comment lines.
fn code_of(text: &str) -> String {
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// Whether `code` uses the identifier `name`.
pub(crate) fn uses(code: &str, name: &str) -> bool {
    code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).any(|tok| tok == name)
}
