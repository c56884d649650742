//! The reductions of a node-parallel body over a destination's incoming edges, lane-local per
//! element: softmax (an online running maximum `mN` and denominator `dN`, then `exp(x - m) /
//! d` in later loops, as the CPU's shift-by-max softmax) and aggregation (sum, mean, max; all
//! edges together, or per relation over the contiguous runs of equal `rel[e]`, each run folded
//! into the accumulator when it ends). A node without incoming edges aggregates to 0. The
//! statistics of `max_grad` (a running maximum and its first edge) are written by `grad.rs`.

use super::emit::{open_slots, Ctx};
use crate::error::{internal, Result};
use crate::spec::GraphArray;
use crate::writer::Writer;
use pigeon_ir::plan::{RegId, StmtOp};
use pigeon_ir::{AggGroup, AggOp};

const NEG_INF: &str = "-__int_as_float(0x7f800000)";

/// `name[s]` for a distributed value, `name` for a replicated one.
fn el(name: &str, replicated: bool) -> String {
    if replicated {
        name.to_string()
    } else {
        format!("{name}[s]")
    }
}

/// Declares per-element state `name` with `init`.
fn state(w: &mut Writer, ctx: &Ctx, name: &str, width: usize, init: &str) {
    if width == 1 {
        w.line(format!("float {name} = {init};"));
    } else {
        let slots = ctx.slots(width);
        w.line(format!("float {name}[{slots}];"));
        w.line("#pragma unroll");
        w.line(format!("for (int s = 0; s < {slots}; ++s) {name}[s] = {init};"));
    }
}

/// Writes `lines(s)` for every element of a `width`-wide value.
fn each(w: &mut Writer, ctx: &Ctx, width: usize, lines: &[String]) {
    if width == 1 {
        lines.iter().for_each(|l| w.line(l));
    } else {
        open_slots(w, ctx, width);
        lines.iter().for_each(|l| w.line(l));
        w.close();
    }
}

/// Whether reduction `i` is a `max_grad` (its statistics are kept by `grad.rs`).
fn is_max_grad(ctx: &Ctx, i: usize) -> bool {
    matches!(ctx.t.body[i].op, StmtOp::MaxGrad { .. })
}

/// The operands of reduction statement `i`: (op, group, x) for aggregates, x for softmax.
fn parts(ctx: &Ctx, i: usize) -> Result<(Option<(AggOp, AggGroup)>, RegId)> {
    match &ctx.t.body[i].op {
        StmtOp::Softmax { x } => Ok((None, *x)),
        StmtOp::Aggregate { op, group, x } => Ok((Some((*op, *group)), *x)),
        _ => Err(internal(format!("r{i} is not a reduction"))),
    }
}

/// Declares the state of reduction `i` before its loop.
pub(crate) fn begin(w: &mut Writer, ctx: &Ctx, i: usize) -> Result<()> {
    if is_max_grad(ctx, i) {
        return super::grad::max_begin(w, ctx, i);
    }
    let width = ctx.regs[i].width;
    match parts(ctx, i)? {
        (None, _) => {
            state(w, ctx, &format!("m{i}"), width, NEG_INF);
            state(w, ctx, &format!("d{i}"), width, "0.0f");
        }
        (Some((op, group)), _) => {
            let init = if op == AggOp::Max && group == AggGroup::All { NEG_INF } else { "0.0f" };
            state(w, ctx, &format!("r{i}"), width, init);
            if group == AggGroup::PerRelation {
                let run_init = if op == AggOp::Max { NEG_INF } else { "0.0f" };
                state(w, ctx, &format!("u{i}"), width, run_init);
                w.line(format!("unsigned rel{i} = 0u, n{i} = 0u;"));
            }
        }
    }
    Ok(())
}

/// Accumulates edge `e`'s value into reduction `i` (inside its loop, after the value).
pub(crate) fn step(w: &mut Writer, ctx: &mut Ctx, i: usize) -> Result<()> {
    if is_max_grad(ctx, i) {
        return super::grad::max_step(w, ctx, i);
    }
    let width = ctx.regs[i].width;
    let rep = width == 1;
    let (agg, x) = parts(ctx, i)?;
    let xv = ctx.elem(x)?;
    let acc = el(&format!("r{i}"), rep);
    match agg {
        None => {
            let (m, d) = (el(&format!("m{i}"), rep), el(&format!("d{i}"), rep));
            each(
                w,
                ctx,
                width,
                &[
                    format!("const float mx{i} = fmaxf({m}, {xv});"),
                    format!("{d} = {d} * expf({m} - mx{i}) + expf({xv} - mx{i});"),
                    format!("{m} = mx{i};"),
                ],
            );
        }
        Some((op, AggGroup::All)) => {
            let line = match op {
                AggOp::Sum | AggOp::Mean => format!("{acc} += {xv};"),
                AggOp::Max => format!("{acc} = fmaxf({acc}, {xv});"),
            };
            each(w, ctx, width, &[line]);
        }
        Some((op, AggGroup::PerRelation)) => {
            let rel = ctx.params.array(GraphArray::Rel);
            let e = ctx.edge_row;
            w.open(format!("if (n{i} > 0u && {rel}[{e}] != rel{i})"));
            fold(w, ctx, i, op);
            w.close();
            w.line(format!("rel{i} = {rel}[{e}];"));
            w.line(format!("++n{i};"));
            let run = el(&format!("u{i}"), rep);
            let line = match op {
                AggOp::Sum | AggOp::Mean => format!("{run} += {xv};"),
                AggOp::Max => format!("{run} = fmaxf({run}, {xv});"),
            };
            each(w, ctx, width, &[line]);
        }
    }
    Ok(())
}

/// Whether reduction `i` can run lane-parallel: each lane of the group accumulates the edges
/// it holds (a scalar softmax's statistics, a scalar aggregation over all edges), merged by
/// [`merge`] after the loop. Per-relation runs need the edges in order and stay per edge.
pub(crate) fn lane_parallel(ctx: &Ctx, i: usize) -> Result<bool> {
    let scalar = ctx.regs[i].width == 1;
    if is_max_grad(ctx, i) {
        return Ok(scalar);
    }
    Ok(match parts(ctx, i)? {
        (None, _) | (Some((_, AggGroup::All)), _) => scalar,
        (Some((_, AggGroup::PerRelation)), _) => false,
    })
}

/// Accumulates the lane's own edge into lane-parallel reduction `i` (lanes past the node's
/// last edge hold none).
pub(crate) fn lane_step(w: &mut Writer, ctx: &mut Ctx, i: usize) -> Result<()> {
    w.open("if (j < end)");
    step(w, ctx, i)?;
    w.close();
    Ok(())
}

/// Merges the per-lane partials of lane-parallel reduction `i` after its loop, so every lane
/// holds the node's value. Softmax: `m = max_l m_l`, `d = sum_l d_l exp(m_l - m)`, where a lane
/// that saw no edge (`m_l = -inf`, `d_l = 0`) adds 0 (not `0 * exp(-inf + inf)`); sum and mean
/// add the partial sums (the mean divides by the count at its node statement); max takes the
/// maximum (a node without edges gets 0 at its node statement).
pub(crate) fn merge(w: &mut Writer, ctx: &Ctx, i: usize) -> Result<()> {
    if is_max_grad(ctx, i) {
        return super::grad::max_merge(w, ctx, i);
    }
    match parts(ctx, i)? {
        (None, _) => {
            w.line(format!("const float mg{i} = pg::group_max<G>(m{i}, mask);"));
            w.line(format!(
                "d{i} = pg::group_sum<G>(m{i} == {NEG_INF} ? 0.0f : d{i} * expf(m{i} - mg{i}), \
                 mask);"
            ));
            w.line(format!("m{i} = mg{i};"));
        }
        (Some((AggOp::Sum | AggOp::Mean, _)), _) => {
            w.line(format!("r{i} = pg::group_sum<G>(r{i}, mask);"));
        }
        (Some((AggOp::Max, _)), _) => {
            w.line(format!("r{i} = pg::group_max<G>(r{i}, mask);"));
        }
    }
    Ok(())
}

/// Folds the finished run of reduction `i` into its accumulator and starts a new run.
fn fold(w: &mut Writer, ctx: &Ctx, i: usize, op: AggOp) {
    let width = ctx.regs[i].width;
    let rep = width == 1;
    let (acc, run) = (el(&format!("r{i}"), rep), el(&format!("u{i}"), rep));
    let reset = if op == AggOp::Max { NEG_INF } else { "0.0f" };
    let add = match op {
        AggOp::Sum | AggOp::Max => format!("{acc} += {run};"),
        AggOp::Mean => format!("{acc} += {run} / (float)n{i};"),
    };
    each(w, ctx, width, &[add, format!("{run} = {reset};")]);
    w.line(format!("n{i} = 0u;"));
}

/// Finishes aggregation `i` after its loop (the node statement itself).
pub(crate) fn finish(w: &mut Writer, ctx: &Ctx, i: usize) -> Result<()> {
    let width = ctx.regs[i].width;
    let acc = el(&format!("r{i}"), width == 1);
    match parts(ctx, i)? {
        (Some((op, AggGroup::PerRelation)), _) => {
            w.open(format!("if (n{i} > 0u)"));
            fold(w, ctx, i, op);
            w.close();
            Ok(())
        }
        (Some((AggOp::Mean, AggGroup::All)), _) => {
            w.open("if (end > begin)");
            each(w, ctx, width, &[format!("{acc} /= (float)(end - begin);")]);
            w.close();
            Ok(())
        }
        (Some((AggOp::Max, AggGroup::All)), _) => {
            w.open("if (end == begin)");
            each(w, ctx, width, &[format!("{acc} = 0.0f;")]);
            w.close();
            Ok(())
        }
        (Some((AggOp::Sum, AggGroup::All)), _) => Ok(()),
        (None, _) => Err(internal(format!("r{i}: a softmax has no node statement"))),
    }
}

/// The value of softmax `i` for the current edge (in a loop after its statistics' loop).
pub(crate) fn softmax_value(w: &mut Writer, ctx: &Ctx, i: usize) -> Result<()> {
    let (_, x) = parts(ctx, i)?;
    let width = ctx.regs[i].width;
    let rep = width == 1;
    let xv = ctx.elem(x)?;
    let (m, d) = (el(&format!("m{i}"), rep), el(&format!("d{i}"), rep));
    super::emit::elementwise(w, ctx, i, width, &format!("expf({xv} - {m}) / {d}"));
    Ok(())
}
