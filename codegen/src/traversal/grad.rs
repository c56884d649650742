//! The derivative statements of backward bodies, with the CPU back end's semantics
//! (`runtime/src/cpu/body.rs`):
//!
//! - `sum_to` (the transpose of broadcasting): output element `o` sums the operand elements
//!   `base(o) + off(q)`, `q < R`, read from the group's scratch (or the lane's own slots when
//!   nothing is summed; a group sum when the output is a scalar);
//! - `transpose` and `narrow`: gathers of the row's elements, `out[o] = x[from(o)]`, through a
//!   shuffle when the operand fits one slot, else through scratch;
//! - `group_size`: the destination's in-degree, or the length of the edge's relation run among
//!   the destination's incoming edges (sorted by relation on the GPU: two binary searches);
//! - `max_grad` over all incoming edges: a reduction like softmax's statistics. Its loop keeps,
//!   per element, the running maximum `mN` and the smallest edge id `aN` attaining it (edges
//!   come in (relation, edge id) order on the GPU, so the smallest id is the CPU's first edge in
//!   its edge-id order); a later loop gives `dy` on edge `aN`, 0 elsewhere. Per-relation groups
//!   are refused by `regs.rs`.

use super::emit::{declare, elementwise, open_slots, Ctx};
use crate::error::{internal, Result};
use crate::spec::GraphArray;
use crate::writer::Writer;
use pigeon_ir::plan::{RegId, StmtOp};
use pigeon_ir::{shape, AggGroup, Shape};

const NEG_INF: &str = "-__int_as_float(0x7f800000)";
const NO_EDGE: &str = "0xffffffffu";

/// `sum over axes of ((flat / inner) % extent) * stride` over `axes` (outermost first, row-major
/// within them), as a C expression; `0` without axes.
fn decompose(flat: &str, axes: &[(usize, usize)]) -> String {
    let mut terms = Vec::new();
    let mut inner = 1usize;
    for (n, &(extent, stride)) in axes.iter().enumerate().rev() {
        if extent > 1 {
            let mut t = if inner == 1 { flat.to_string() } else { format!("({flat} / {inner})") };
            if n > 0 {
                t = format!("({t} % {extent})");
            }
            if stride != 1 {
                t = format!("{t} * {stride}");
            }
            terms.push(t);
        }
        inner *= extent;
    }
    if terms.is_empty() {
        return "0".into();
    }
    terms.reverse();
    terms.join(" + ")
}

/// Axes of a row as `(extent, stride)`, outermost first.
pub(crate) type Axes = Vec<(usize, usize)>;

/// For `sum_to` of an `x` row to `out`: the kept axes and the summed axes of `x`, each as
/// `(extent, stride in x)`.
pub(crate) fn sum_axes(out: &Shape, x: &Shape) -> (Axes, Axes) {
    let rank = x.rank();
    let out_strides = shape::broadcast_strides(out, rank);
    let mut x_strides = vec![1usize; rank];
    for ax in (0..rank.saturating_sub(1)).rev() {
        x_strides[ax] = x_strides[ax + 1] * x.dims()[ax + 1];
    }
    let (mut kept, mut summed) = (Vec::new(), Vec::new());
    for ax in 0..rank {
        let d = x.dims()[ax];
        if d == 1 {
            continue;
        }
        if out_strides[ax] != 0 {
            kept.push((d, x_strides[ax]));
        } else {
            summed.push((d, x_strides[ax]));
        }
    }
    (kept, summed)
}

/// Copies distributed register `x` (`width` elements) into the group's scratch.
fn spill(w: &mut Writer, ctx: &mut Ctx, x: RegId, width: usize) {
    ctx.use_scratch(width);
    w.line("__syncwarp(mask);");
    open_slots(w, ctx, width);
    let guard = if ctx.padded(width) { format!("if (i < {width}) ") } else { String::new() };
    w.line(format!("{guard}sc[i] = {}[s];", ctx.name(x)));
    w.close();
    w.line("__syncwarp(mask);");
}

/// `rI = sum_to(x)`.
pub(crate) fn sum_to(w: &mut Writer, ctx: &mut Ctx, i: usize, x: RegId) -> Result<()> {
    let out = ctx.regs[i].shape.clone();
    let o = ctx.regs[i].width;
    let xr = ctx.reg(x)?.clone();
    if xr.width == o {
        let v = ctx.elem(x)?;
        elementwise(w, ctx, i, o, &v);
        return Ok(());
    }
    let name = ctx.name(x);
    if o == 1 {
        w.line(format!("float p{i} = 0.0f;"));
        open_slots(w, ctx, xr.width);
        let guard =
            if ctx.padded(xr.width) { format!("if (i < {}) ", xr.width) } else { String::new() };
        w.line(format!("{guard}p{i} += {name}[s];"));
        w.close();
        w.line(format!("const float r{i} = pg::group_sum<G>(p{i}, mask);"));
        return Ok(());
    }
    let (kept, summed) = sum_axes(&out, &xr.shape);
    let terms: usize = summed.iter().map(|a| a.0).product();
    if kept.iter().map(|a| a.0).product::<usize>() != o || terms * o != xr.width {
        return Err(internal(format!("r{i}: cannot sum {} to {out}", xr.shape)));
    }
    spill(w, ctx, x, xr.width);
    declare(w, ctx, i, o);
    open_slots(w, ctx, o);
    w.line("float sum = 0.0f;");
    w.open(format!("if (i < {o})"));
    w.line(format!("const int base = {};", decompose("i", &kept)));
    w.line(format!(
        "for (int q = 0; q < {terms}; ++q) sum += sc[base + {}];",
        decompose("q", &summed)
    ));
    w.close();
    w.line(format!("r{i}[s] = sum;"));
    w.close();
    Ok(())
}

/// `rI = transpose(x)`: `[.., k, n]` to `[.., n, k]`.
pub(crate) fn transpose(w: &mut Writer, ctx: &mut Ctx, i: usize, x: RegId) -> Result<()> {
    let xs = ctx.reg(x)?.shape.clone();
    let [.., k, n] = xs.dims() else {
        return Err(internal(format!("r{i}: transpose of a {xs} row")));
    };
    let (k, n) = (*k, *n);
    let nk = n * k;
    let from = move |o: usize| (o / nk) * nk + (o % k) * n + (o % nk) / k;
    let expr = format!("(i / {nk}) * {nk} + (i % {k}) * {n} + (i % {nk}) / {k}");
    permute(w, ctx, i, x, &from, &expr)
}

/// `rI = narrow(x, start, len)` along the last axis.
pub(crate) fn narrow(
    w: &mut Writer,
    ctx: &mut Ctx,
    i: usize,
    x: RegId,
    start: usize,
    len: usize,
) -> Result<()> {
    let xs = ctx.reg(x)?.shape.clone();
    let last = *xs.dims().last().ok_or_else(|| internal(format!("r{i}: narrow of a scalar")))?;
    let from = move |o: usize| (o / len) * last + start + o % len;
    let expr = format!("(i / {len}) * {last} + {start} + i % {len}");
    permute(w, ctx, i, x, &from, &expr)
}

/// `rI[o] = x[from(o)]` (`expr`: `from` as a C expression of `i`).
fn permute(
    w: &mut Writer,
    ctx: &mut Ctx,
    i: usize,
    x: RegId,
    from: &dyn Fn(usize) -> usize,
    expr: &str,
) -> Result<()> {
    let o = ctx.regs[i].width;
    let xr = ctx.reg(x)?.clone();
    let name = ctx.name(x);
    if xr.replicated() {
        w.line(format!("const float r{i} = {name};"));
        return Ok(());
    }
    if o == 1 {
        let c = from(0);
        let g = ctx.g;
        w.line(format!("const float r{i} = __shfl_sync(mask, {name}[{}], {}, G);", c / g, c % g));
        return Ok(());
    }
    let guard = ctx.padded(o).then(|| format!("i < {o}"));
    let pick = |v: &str| match &guard {
        Some(g) => format!("{g} ? {v} : 0.0f"),
        None => v.to_string(),
    };
    if ctx.slots(xr.width) == 1 {
        declare(w, ctx, i, o);
        open_slots(w, ctx, o);
        w.line(format!("const float v = __shfl_sync(mask, {name}[0], ({expr}) % G, G);"));
        w.line(format!("r{i}[s] = {};", pick("v")));
        w.close();
        return Ok(());
    }
    spill(w, ctx, x, xr.width);
    declare(w, ctx, i, o);
    open_slots(w, ctx, o);
    w.line(format!("r{i}[s] = {};", pick(&format!("sc[{expr}]"))));
    w.close();
    Ok(())
}

/// `rI = group_size`: a scalar per edge.
pub(crate) fn group_size(w: &mut Writer, ctx: &mut Ctx, i: usize, group: AggGroup) -> Result<()> {
    match group {
        AggGroup::All => w.line(format!("const float r{i} = (float)(end - begin);")),
        AggGroup::PerRelation => {
            let edges = ctx.params.array(GraphArray::CsrEdges);
            let rel = ctx.params.array(GraphArray::Rel);
            let e = ctx.edge_row;
            w.line(format!(
                "const float r{i} = (float)pg::rel_run_size({edges}, {rel}, begin, end, \
                 {rel}[{e}]);"
            ));
        }
    }
    Ok(())
}

/// The operands `(x, dy)` of `max_grad` statement `i`.
fn max_grad_operands(ctx: &Ctx, i: usize) -> Result<(RegId, RegId)> {
    match &ctx.t.body[i].op {
        StmtOp::MaxGrad { group: AggGroup::All, x, dy } => Ok((*x, *dy)),
        _ => Err(internal(format!("r{i} is not a max_grad over all edges"))),
    }
}

fn el(name: &str, replicated: bool) -> String {
    if replicated {
        name.to_string()
    } else {
        format!("{name}[s]")
    }
}

/// Declares the running maximum `mI` and its first edge `aI` before the statistics loop.
pub(crate) fn max_begin(w: &mut Writer, ctx: &Ctx, i: usize) -> Result<()> {
    max_grad_operands(ctx, i)?;
    let width = ctx.regs[i].width;
    if width == 1 {
        w.line(format!("float m{i} = {NEG_INF};"));
        w.line(format!("unsigned a{i} = {NO_EDGE};"));
    } else {
        let slots = ctx.slots(width);
        w.line(format!("float m{i}[{slots}];"));
        w.line(format!("unsigned a{i}[{slots}];"));
        w.line("#pragma unroll");
        w.line(format!(
            "for (int s = 0; s < {slots}; ++s) {{ m{i}[s] = {NEG_INF}; a{i}[s] = {NO_EDGE}; }}"
        ));
    }
    Ok(())
}

/// Folds the current edge into the running maximum of `max_grad` `i`: a larger value, or an
/// equal one on a smaller edge id, takes over.
pub(crate) fn max_step(w: &mut Writer, ctx: &Ctx, i: usize) -> Result<()> {
    let (x, _) = max_grad_operands(ctx, i)?;
    let width = ctx.regs[i].width;
    let rep = width == 1;
    let xv = ctx.elem(x)?;
    let (m, a) = (el(&format!("m{i}"), rep), el(&format!("a{i}"), rep));
    let e = ctx.edge_row;
    let line =
        format!("if ({xv} > {m} || ({xv} == {m} && {e} < {a})) {{ {m} = {xv}; {a} = {e}; }}");
    if rep {
        w.line(line);
    } else {
        open_slots(w, ctx, width);
        w.line(line);
        w.close();
    }
    Ok(())
}

/// Merges the lanes' running maxima of scalar `max_grad` `i` (every lane gets the node's).
pub(crate) fn max_merge(w: &mut Writer, ctx: &Ctx, i: usize) -> Result<()> {
    max_grad_operands(ctx, i)?;
    w.line(format!("const float mg{i} = pg::group_max<G>(m{i}, mask);"));
    w.line(format!("a{i} = pg::group_min_u<G>(m{i} == mg{i} ? a{i} : {NO_EDGE}, mask);"));
    w.line(format!("m{i} = mg{i};"));
    Ok(())
}

/// The value of `max_grad` `i` on the current edge (in a loop after its statistics' loop).
pub(crate) fn max_grad_value(w: &mut Writer, ctx: &mut Ctx, i: usize) -> Result<()> {
    let (_, dy) = max_grad_operands(ctx, i)?;
    let width = ctx.regs[i].width;
    let dv = ctx.elem(dy)?;
    let a = el(&format!("a{i}"), width == 1);
    let e = ctx.edge_row;
    elementwise(w, ctx, i, width, &format!("{e} == {a} ? {dv} : 0.0f"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Evaluates `decompose`'s expressions: sums of `(v / a) % b * c`.
    fn eval(expr: &str, var: &str, v: usize) -> usize {
        expr.split(" + ")
            .map(|term| {
                let t = term.replace(['(', ')'], "");
                let mut toks = t.split(' ');
                let mut acc = match toks.next() {
                    Some(x) if x == var => v,
                    Some(n) => n.parse().unwrap_or(usize::MAX),
                    None => 0,
                };
                while let (Some(op), Some(n)) = (toks.next(), toks.next()) {
                    let n: usize = n.parse().unwrap_or(1);
                    acc = match op {
                        "/" => acc / n,
                        "%" => acc % n,
                        "*" => acc * n,
                        _ => usize::MAX,
                    };
                }
                acc
            })
            .sum()
    }

    /// `sum_to`'s base and offset expressions visit every operand element exactly once, each
    /// for the output element the broadcast rules send it to.
    fn check_sum_to(out: &[usize], x: &[usize]) {
        let (out, x) = (Shape(out.to_vec()), Shape(x.to_vec()));
        let (kept, summed) = sum_axes(&out, &x);
        let terms: usize = summed.iter().map(|a| a.0).product();
        let (base, off) = (decompose("i", &kept), decompose("q", &summed));
        // Broadcast rule: x element j belongs to the output element at these offsets.
        let strides = shape::broadcast_strides(&out, x.rank());
        let mut seen = vec![0usize; x.numel()];
        for o in 0..out.numel() {
            for q in 0..terms {
                let j = eval(&base, "i", o) + eval(&off, "q", q);
                assert!(j < x.numel(), "{base} / {off}: {j}");
                seen[j] += 1;
                let (mut rest, mut want) = (j, 0);
                for ax in (0..x.rank()).rev() {
                    want += (rest % x.dims()[ax]) * strides[ax];
                    rest /= x.dims()[ax];
                }
                assert_eq!(want, o, "x element {j} of {x} sums into {want}, not {o}");
            }
        }
        assert!(seen.iter().all(|&c| c == 1), "{out} from {x}: {seen:?}");
    }

    /// The generated statistics of a scalar `max_grad` (`max_step` in each lane for the edges
    /// it holds, then `max_merge`) pick, for every degree, group size and pattern of ties, the
    /// CPU's edge: the first in edge-id order attaining the maximum, although the GPU's in-CSR
    /// lists a node's edges by (relation, edge id).
    #[test]
    fn merged_max_grad_statistics_pick_the_first_maximal_edge() {
        for g in [1usize, 2, 4, 32] {
            for n in [1usize, 2, 3, 31, 32, 33, 70] {
                for ties in [1usize, 2, 5] {
                    // Edge ids 100.. with values on a coarse grid (ties), in CSR order by
                    // relation (id % 3) then id.
                    let val = |id: usize| ((id * 7) % (ties + 1)) as f32;
                    let mut csr: Vec<usize> = (100..100 + n).collect();
                    csr.sort_by_key(|&id| (id % 3, id));
                    let mut lanes = vec![(f32::NEG_INFINITY, u32::MAX); g];
                    for j0 in (0..n).step_by(g) {
                        for (l, (m, a)) in lanes.iter_mut().enumerate() {
                            if j0 + l < n {
                                let e = csr[j0 + l] as u32;
                                let x = val(e as usize);
                                if x > *m || (x == *m && e < *a) {
                                    (*m, *a) = (x, e);
                                }
                            }
                        }
                    }
                    let mg = lanes.iter().fold(f32::NEG_INFINITY, |m, l| m.max(l.0));
                    let a = lanes.iter().map(|l| if l.0 == mg { l.1 } else { u32::MAX }).min();
                    // The CPU: edges in id order, the first attaining the maximum.
                    let want = (100..100 + n).fold(None, |best: Option<usize>, id| match best {
                        Some(b) if val(b) >= val(id) => Some(b),
                        _ => Some(id),
                    });
                    assert_eq!(a.map(|a| a as usize), want, "G {g}, {n} edges, ties {ties}");
                }
            }
        }
    }

    #[test]
    fn sum_to_visits_each_element_once() {
        check_sum_to(&[4], &[4, 16]);
        check_sum_to(&[1, 16], &[4, 16]);
        check_sum_to(&[4, 1], &[4, 16]);
        check_sum_to(&[2, 1, 3], &[2, 5, 3]);
        check_sum_to(&[1, 5, 1], &[2, 5, 3]);
        check_sum_to(&[2], &[2, 5, 3]);
    }
}
