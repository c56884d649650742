//! The kernel around a body: parameters, the group of `G` lanes per row, the row guard, the
//! shared scratch, and the loop structure of each schedule (a row or edge per group; or a
//! destination node per group with its edge loops and node statements, `passes.rs`).

use super::emit::{self, Ctx};
use super::modes::{self, Mode};
use super::passes::{self, Passes};
use super::{batch, reduce, regs};
use crate::error::{unsupported, Result};
use crate::params::Params;
use crate::spec::{GraphArray, Grid, KernelLaunch};
use crate::writer::Writer;
use pigeon_ir::plan::{KernelId, Level, Plan, RowSpace, Schedule, StmtOp, Traversal};
use std::collections::HashMap;

/// Threads per block when scratch does not limit it.
const BLOCK: usize = 256;
/// Static shared memory a block may use, in floats (48 KiB).
const SHARED_FLOATS: usize = 12 * 1024;

/// Writes the kernel for `t` and returns how to launch it.
pub(crate) fn emit(
    w: &mut Writer,
    plan: &Plan,
    id: KernelId,
    t: &Traversal,
    name: &str,
) -> Result<KernelLaunch> {
    let regs = regs::analyze(plan, t)?;
    let live = passes::liveness(t);
    let g = group_size(&regs, &live);
    let written = t.body.iter().filter_map(|s| match s.op {
        StmtOp::Store { buf, .. } => Some(buf),
        _ => None,
    });
    let space = match t.schedule {
        Schedule::Rows(space) => space,
        Schedule::EdgeParallel => RowSpace::Edges,
        Schedule::NodeParallel => RowSpace::Nodes,
    };
    let mut ctx = Ctx {
        plan,
        t,
        regs: &regs,
        params: Params::new(plan, written),
        g,
        scratch: 0,
        edge_row: if matches!(t.schedule, Schedule::Rows(_)) { "row" } else { "e" },
        texts: super::text::stmt_texts(t),
        names: HashMap::new(),
        rows: HashMap::new(),
        preloaded: HashMap::new(),
        hoisted: false,
        lane_edges: false,
    };
    let count = ctx.params.count(space);
    let mut body = Writer::new();
    match t.schedule {
        Schedule::Rows(_) | Schedule::EdgeParallel => row_body(&mut body, &mut ctx, &live)?,
        Schedule::NodeParallel => {
            let split = passes::split(t, &regs);
            let modes = modes::modes(plan, t, &regs);
            node_body(&mut body, &mut ctx, &split, &modes)?;
        }
    }
    let groups = groups_per_block(g, ctx.scratch)?;
    let block = groups * g;
    w.line(format!(
        "// {id}: traversal {}; {g} lane(s) per row, {groups} row(s) per block",
        super::text::schedule(t.schedule)
    ));
    w.open(format!(
        "extern \"C\" __global__ void __launch_bounds__({block}, {}) {name}({})",
        min_blocks(block),
        ctx.params.signature()
    ));
    let body = body.finish();
    prologue(w, &ctx, groups, &count, &code_of(&body));
    for line in body.lines() {
        w.line(line);
    }
    w.close();
    Ok(KernelLaunch {
        kernel: id,
        name: name.to_string(),
        params: ctx.params.into_list(),
        grid: Grid::Rows { space, rows_per_block: groups as u32 },
        block: block as u32,
        segmentation: None,
    })
}

/// The body's code without comment lines (to see which names it uses).
fn code_of(body: &str) -> String {
    body.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// Group constants, the scratch, the row and its guard.
fn prologue(w: &mut Writer, ctx: &Ctx, groups: usize, count: &str, code: &str) {
    w.line(format!("constexpr int G = {};", ctx.g));
    if code.contains("lane") {
        w.line("const int lane = threadIdx.x % G;");
    }
    if code.contains("mask") {
        // A whole warp's mask is written out: `group_mask<32>` warns about its shift count.
        if ctx.g == 32 {
            w.line("const unsigned mask = 0xffffffffu;");
        } else {
            w.line("const unsigned mask = pg::group_mask<G>();");
        }
    }
    if ctx.scratch > 0 {
        w.line(format!("__shared__ float scratch[{groups}][{}];", ctx.scratch));
        w.line("float* sc = scratch[threadIdx.x / G];");
    }
    w.line(format!("const unsigned row = blockIdx.x * {groups}u + threadIdx.x / G;"));
    w.line(format!("if (row >= {count}) return;"));
}

/// The smallest power of two at least as wide as every live register, at most 32.
fn group_size(regs: &[regs::Reg], live: &[bool]) -> usize {
    let widest = regs.iter().zip(live).filter(|(_, l)| **l).map(|(r, _)| r.width).max();
    widest.unwrap_or(1).max(1).next_power_of_two().min(32)
}

/// The blocks per multiprocessor `__launch_bounds__` asks for: full blocks get a budget of 64
/// registers a thread (`__launch_bounds__(256)` alone makes ptxas aim at 32 and spill); the
/// small blocks of statements with a large scratch (and wide registers) get all 255.
fn min_blocks(block: usize) -> usize {
    if block >= 256 {
        1024 / block
    } else {
        1
    }
}

/// Rows per block: `BLOCK / G`, fewer when the scratch would not fit.
fn groups_per_block(g: usize, scratch: usize) -> Result<usize> {
    let mut groups = BLOCK / g;
    if let Some(fit) = SHARED_FLOATS.checked_div(scratch) {
        groups = groups.min(fit);
    }
    if groups == 0 {
        return Err(unsupported(format!(
            "a traversal statement needing {scratch} floats of shared scratch per row (at most \
             {SHARED_FLOATS})"
        )));
    }
    Ok(groups)
}

/// One statement with its plan text as a comment.
pub(crate) fn statement(w: &mut Writer, ctx: &mut Ctx, i: usize) -> Result<()> {
    w.line(format!("// {}", ctx.texts.get(i).map(String::as_str).unwrap_or("")));
    emit::stmt(w, ctx, i)
}

/// A row or edge per group: the live statements in order.
fn row_body(w: &mut Writer, ctx: &mut Ctx, live: &[bool]) -> Result<()> {
    if ctx.t.schedule == Schedule::EdgeParallel {
        w.line("const unsigned e = row;");
    }
    for (i, l) in live.iter().enumerate() {
        if *l {
            statement(w, ctx, i)?;
        }
    }
    Ok(())
}

/// A destination node per group: node statements between the edge loops of `split` (in
/// batches of `G` edges, `batch.rs`), edge-invariant statements once before them.
fn node_body(w: &mut Writer, ctx: &mut Ctx, split: &Passes, modes: &[Mode]) -> Result<()> {
    let loops = split.evaluated.len();
    w.line("const unsigned v = row;");
    if loops > 0 {
        let offsets = ctx.params.array(GraphArray::CsrOffsets);
        w.line(format!("const unsigned begin = {offsets}[v], end = {offsets}[v + 1];"));
        batch::hoist(w, ctx, split, modes)?;
    }
    for stage in 0..=loops {
        for i in 0..ctx.t.body.len() {
            if ctx.regs[i].level == Level::Node && split.live[i] && split.ready[i] == stage {
                node_statement(w, ctx, i)?;
            }
        }
        if stage < loops {
            batch::edge_loop(w, ctx, split, modes, stage)?;
        }
    }
    Ok(())
}

fn node_statement(w: &mut Writer, ctx: &mut Ctx, i: usize) -> Result<()> {
    if matches!(ctx.t.body[i].op, StmtOp::Aggregate { .. }) {
        w.line(format!("// {}", ctx.texts.get(i).map(String::as_str).unwrap_or("")));
        return reduce::finish(w, ctx, i);
    }
    statement(w, ctx, i)
}
