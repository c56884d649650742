//! Statements whose output elements read elements held by other lanes of the group: broadcast
//! binaries, dot products, concatenation and small matrix-vector products. An operand element
//! another lane holds is read with `__shfl_sync` when the operand fits one slot, else through
//! the group's shared-memory scratch (`sc`, fenced by `__syncwarp(mask)`). Single-output dot
//! products and matrix-vector products sum lane partials with `pg::group_sum`.

use super::emit::{declare, open_slots, Ctx};
use crate::error::{internal, Result};
use crate::index::broadcast_expr;
use crate::ops::binary_expr;
use crate::writer::Writer;
use pigeon_ir::plan::{BufferId, RegId, RowIndex};
use pigeon_ir::shape::LinearForm;
use pigeon_ir::{BinaryOp, Select, Shape};

/// Where a statement reads an operand's elements from.
enum Src {
    /// Replicated: `rN` is every element.
    Rep(String),
    /// Same layout as the output: `rN[s]`.
    Local(String),
    /// One slot, read from lane `j` with a shuffle.
    Shfl(String),
    /// Copied to scratch at this offset.
    Scratch(usize),
}

impl Src {
    /// The value of element `idx` (an int C expression); `guard` is a condition under which
    /// `idx` is in range (scratch reads are clamped to 0 outside it). Shuffles are evaluated by
    /// every lane, so the result must be bound before any divergent code.
    fn value(&self, idx: &str, guard: Option<&str>) -> String {
        match self {
            Src::Rep(n) => n.clone(),
            Src::Local(n) => format!("{n}[s]"),
            Src::Shfl(n) => format!("__shfl_sync(mask, {n}[0], {idx}, G)"),
            Src::Scratch(off) => {
                let at =
                    if *off == 0 { format!("sc[{idx}]") } else { format!("sc[{off} + {idx}]") };
                match guard {
                    Some(g) => format!("({g} ? {at} : 0.0f)"),
                    None => at,
                }
            }
        }
    }
}

/// How to read `x` for an output of `out_width` elements; cross-lane operands that do not fit
/// one slot are given scratch at `*off` (advanced).
fn source(ctx: &Ctx, x: RegId, out_width: usize, off: &mut usize) -> Result<Src> {
    let reg = ctx.reg(x)?;
    Ok(if reg.replicated() {
        Src::Rep(ctx.name(x))
    } else if reg.width == out_width {
        Src::Local(ctx.name(x))
    } else if ctx.slots(reg.width) == 1 {
        Src::Shfl(ctx.name(x))
    } else {
        let at = *off;
        *off += reg.width;
        Src::Scratch(at)
    })
}

/// Copies the scratch operands of `srcs` (register, source) into the group's scratch, between
/// two `__syncwarp`s; nothing when none is in scratch.
fn spill(w: &mut Writer, ctx: &mut Ctx, srcs: &[(RegId, &Src)]) -> Result<()> {
    let mut any = false;
    for (x, src) in srcs {
        let Src::Scratch(off) = src else { continue };
        if !any {
            w.line("__syncwarp(mask);");
            any = true;
        }
        let width = ctx.reg(*x)?.width;
        ctx.use_scratch(off + width);
        open_slots(w, ctx, width);
        let guard = if ctx.padded(width) { format!("if (i < {width}) ") } else { String::new() };
        w.line(format!("{guard}sc[{off} + i] = {}[s];", ctx.name(*x)));
        w.close();
    }
    if any {
        w.line("__syncwarp(mask);");
    }
    Ok(())
}

/// `rI = op(a, b)` with broadcasting.
pub(crate) fn binary(
    w: &mut Writer,
    ctx: &mut Ctx,
    i: usize,
    op: BinaryOp,
    a: RegId,
    b: RegId,
) -> Result<()> {
    let out = ctx.regs[i].shape.clone();
    let width = ctx.regs[i].width;
    if width == 1 {
        w.line(format!("const float r{i} = {};", binary_expr(op, &ctx.name(a), &ctx.name(b))));
        return Ok(());
    }
    let mut off = 0;
    let (sa, sb) = (source(ctx, a, width, &mut off)?, source(ctx, b, width, &mut off)?);
    spill(w, ctx, &[(a, &sa), (b, &sb)])?;
    declare(w, ctx, i, width);
    open_slots(w, ctx, width);
    let guard = ctx.padded(width).then(|| format!("i < {width}"));
    let mut vals = Vec::new();
    for (x, src, name) in [(a, &sa, "va"), (b, &sb, "vb")] {
        let v = match src {
            Src::Shfl(_) | Src::Scratch(_) => {
                let idx = broadcast_expr(&ctx.reg(x)?.shape, &out, "i");
                w.line(format!("const float {name} = {};", src.value(&idx, guard.as_deref())));
                name.to_string()
            }
            _ => src.value("i", None),
        };
        vals.push(v);
    }
    w.line(format!("r{i}[s] = {};", binary_expr(op, &vals[0], &vals[1])));
    w.close();
    Ok(())
}

/// `rI = dot(a, b)` over the last axis.
pub(crate) fn dot(w: &mut Writer, ctx: &mut Ctx, i: usize, a: RegId, b: RegId) -> Result<()> {
    let (ra, rb) = (ctx.reg(a)?.clone(), ctx.reg(b)?.clone());
    let k = *ra.shape.dims().last().ok_or_else(|| internal("dot of a scalar"))?;
    let o = ctx.regs[i].width;
    let (na, nb) = (ctx.name(a), ctx.name(b));
    if ra.width == 1 && rb.width == 1 {
        w.line(format!("const float r{i} = {na} * {nb};"));
    } else if o == 1 {
        w.line(format!("float p{i} = 0.0f;"));
        open_slots(w, ctx, k);
        let guard = if ctx.padded(k) { format!("if (i < {k}) ") } else { String::new() };
        w.line(format!("{guard}p{i} += {na}[s] * {nb}[s];"));
        w.close();
        w.line(format!("const float r{i} = pg::group_sum<G>(p{i}, mask);"));
    } else if ra.width == o * k && rb.width == o * k && k == 1 {
        super::emit::elementwise(w, ctx, i, o, &format!("{na}[s] * {nb}[s]"));
    } else if ra.width == o * k && rb.width == o * k && k.is_multiple_of(ctx.g) {
        dot_wide(w, ctx, i, &na, &nb, o, k);
    } else if ra.width == o * k && rb.width == o * k && ctx.g.is_multiple_of(k) {
        dot_segments(w, ctx, i, &na, &nb, o, k);
    } else {
        dot_general(w, ctx, i, a, b, k)?;
    }
    Ok(())
}

/// Equal shapes, `K` a multiple of `G`: each output is whole slots of every lane.
fn dot_wide(w: &mut Writer, ctx: &Ctx, i: usize, a: &str, b: &str, o: usize, k: usize) {
    let per = k / ctx.g;
    declare(w, ctx, i, o);
    w.line("#pragma unroll");
    w.line(format!("for (int s = 0; s < {}; ++s) r{i}[s] = 0.0f;", ctx.slots(o)));
    w.line("#pragma unroll");
    w.open(format!("for (int o = 0; o < {o}; ++o)"));
    w.line("float sum = 0.0f;");
    w.line("#pragma unroll");
    w.line(format!("for (int c = o * {per}; c < (o + 1) * {per}; ++c) sum += {a}[c] * {b}[c];"));
    w.line("sum = pg::group_sum<G>(sum, mask);");
    w.line(format!("if (lane == o % G) r{i}[o / G] = sum;"));
    w.close();
}

/// Equal shapes, `K` dividing `G`: products summed within aligned runs of `K` lanes by xor
/// shuffles, then output `o` fetched from the lane and slot of product `o * K`.
fn dot_segments(w: &mut Writer, ctx: &Ctx, i: usize, a: &str, b: &str, o: usize, k: usize) {
    let si = ctx.slots(o * k);
    w.line(format!("float q{i}[{si}];"));
    open_slots(w, ctx, o * k);
    w.line(format!("float sum = {a}[s] * {b}[s];"));
    w.line("#pragma unroll");
    w.line(format!(
        "for (int d = {}; d > 0; d >>= 1) sum += __shfl_xor_sync(mask, sum, d, G);",
        k / 2
    ));
    w.line(format!("q{i}[s] = sum;"));
    w.close();
    declare(w, ctx, i, o);
    open_slots(w, ctx, o);
    w.line(format!("const int from = i * {k};"));
    w.line("float sum = 0.0f;");
    w.line("#pragma unroll");
    w.open(format!("for (int c = 0; c < {si}; ++c)"));
    w.line(format!("const float val = __shfl_sync(mask, q{i}[c], from % G, G);"));
    w.line("if (from / G == c) sum = val;");
    w.close();
    w.line(format!("r{i}[s] = sum;"));
    w.close();
}

/// Any broadcast: operands through scratch, each output element a loop over `K`.
fn dot_general(
    w: &mut Writer,
    ctx: &mut Ctx,
    i: usize,
    a: RegId,
    b: RegId,
    k: usize,
) -> Result<()> {
    let out = ctx.regs[i].shape.clone();
    let o = ctx.regs[i].width;
    let mut off = 0;
    let src = |x: RegId, off: &mut usize| -> Result<Src> {
        let reg = ctx.reg(x)?;
        Ok(if reg.replicated() {
            Src::Rep(ctx.name(x))
        } else {
            *off += reg.width;
            Src::Scratch(*off - reg.width)
        })
    };
    let (sa, sb) = (src(a, &mut off)?, src(b, &mut off)?);
    spill(w, ctx, &[(a, &sa), (b, &sb)])?;
    let lead = |s: &Shape| Shape(s.dims()[..s.rank() - 1].to_vec());
    let ia = broadcast_expr(&lead(&ctx.reg(a)?.shape), &out, "i");
    let ib = broadcast_expr(&lead(&ctx.reg(b)?.shape), &out, "i");
    declare(w, ctx, i, o);
    open_slots(w, ctx, o);
    w.line("float sum = 0.0f;");
    w.open(format!("if (i < {o})"));
    w.line(format!("const int ia = ({ia}) * {k}, ib = ({ib}) * {k};"));
    let (va, vb) = (sa.value("ia + k", None), sb.value("ib + k", None));
    w.line(format!("for (int k = 0; k < {k}; ++k) sum += {va} * {vb};"));
    w.close();
    w.line(format!("r{i}[s] = sum;"));
    w.close();
    Ok(())
}

/// `rI = concat(xs)` along the last axis, assembled in scratch.
pub(crate) fn concat(w: &mut Writer, ctx: &mut Ctx, i: usize, xs: &[RegId]) -> Result<()> {
    let out = ctx.regs[i].shape.clone();
    let width = ctx.regs[i].width;
    let first = *xs.first().ok_or_else(|| internal("concat of nothing"))?;
    if width == 1 {
        w.line(format!("const float r{i} = {};", ctx.name(first)));
        return Ok(());
    }
    let last = *out.dims().last().ok_or_else(|| internal("concat of scalars"))?;
    ctx.use_scratch(width);
    w.line("__syncwarp(mask);");
    let mut at = 0;
    for &x in xs {
        let reg = ctx.reg(x)?.clone();
        let part = *reg.shape.dims().last().ok_or_else(|| internal("concat of a scalar"))?;
        if reg.replicated() {
            w.line(format!("if (lane == 0) sc[{at}] = {};", ctx.name(x)));
        } else {
            open_slots(w, ctx, reg.width);
            let dst = if part == reg.width {
                format!("{at} + i")
            } else {
                format!("(i / {part}) * {last} + {at} + i % {part}")
            };
            let guard = if ctx.padded(reg.width) {
                format!("if (i < {}) ", reg.width)
            } else {
                String::new()
            };
            w.line(format!("{guard}sc[{dst}] = {}[s];", ctx.name(x)));
            w.close();
        }
        at += part;
    }
    w.line("__syncwarp(mask);");
    declare(w, ctx, i, width);
    open_slots(w, ctx, width);
    if ctx.padded(width) {
        w.line(format!("r{i}[s] = i < {width} ? sc[i] : 0.0f;"));
    } else {
        w.line(format!("r{i}[s] = sc[i];"));
    }
    w.close();
    Ok(())
}

/// `rI = x @ w[select]` in the given form (see the CPU back end's `matvec`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matvec(
    w: &mut Writer,
    ctx: &mut Ctx,
    i: usize,
    x: RegId,
    wb: BufferId,
    select: Select,
    form: &LinearForm,
) -> Result<()> {
    let level = ctx.t.body[i].level;
    let rows = ctx.plan.buffers.get(wb).map(|b| b.rows);
    let rows = rows.ok_or_else(|| internal(format!("no buffer {wb}")))?;
    let sel = ctx.index_expr(i, level, RowIndex::Select(select), rows)?;
    let ww = ctx.buffer_width(wb)?;
    w.line(format!("const size_t w{i} = (size_t)({sel}) * {ww};"));
    let out = ctx.regs[i].width;
    let xr = ctx.reg(x)?.clone();
    if out == 1 {
        if xr.replicated() {
            let wv = ctx.read(wb, &format!("w{i}"));
            w.line(format!("const float r{i} = {} * {wv};", ctx.name(x)));
            return Ok(());
        }
        w.line(format!("float p{i} = 0.0f;"));
        open_slots(w, ctx, xr.width);
        let wv = ctx.read(wb, &format!("w{i} + i"));
        let guard =
            if ctx.padded(xr.width) { format!("if (i < {}) ", xr.width) } else { String::new() };
        w.line(format!("{guard}p{i} += {}[s] * {wv};", ctx.name(x)));
        w.close();
        w.line(format!("const float r{i} = pg::group_sum<G>(p{i}, mask);"));
        return Ok(());
    }
    matvec_general(w, ctx, i, x, wb, form, out)
}

fn matvec_general(
    w: &mut Writer,
    ctx: &mut Ctx,
    i: usize,
    x: RegId,
    wb: BufferId,
    form: &LinearForm,
    out: usize,
) -> Result<()> {
    let (k, n, plain) = match *form {
        LinearForm::Plain { k, n } => (k, n, true),
        LinearForm::Batched { k, n, .. } | LinearForm::Broadcast { k, n, .. } => (k, n, false),
    };
    let mut off = 0;
    let src = source(ctx, x, usize::MAX, &mut off)?;
    spill(w, ctx, &[(x, &src)])?;
    let widx = match form {
        LinearForm::Plain { .. } => format!("k * {n} + i"),
        LinearForm::Batched { .. } => format!("((i / {n}) * {k} + k) * {n} + i % {n}"),
        LinearForm::Broadcast { .. } => format!("k * {n} + i % {n}"),
    };
    let xidx = if plain { "k".to_string() } else { format!("(i / {n}) * {k} + k") };
    let guard = format!("i < {out}");
    declare(w, ctx, i, out);
    w.line("#pragma unroll");
    w.line(format!("for (int s = 0; s < {}; ++s) r{i}[s] = 0.0f;", ctx.slots(out)));
    w.line("#pragma unroll 4");
    w.open(format!("for (int k = 0; k < {k}; ++k)"));
    open_slots(w, ctx, out);
    w.line(format!("const float xv = {};", src.value(&xidx, Some(&guard))));
    let wv = ctx.read(wb, &format!("w{i} + {widx}"));
    if ctx.padded(out) {
        w.line(format!("if ({guard}) r{i}[s] += xv * {wv};"));
    } else {
        w.line(format!("r{i}[s] += xv * {wv};"));
    }
    w.close();
    w.close();
    Ok(())
}
