//! Emission of the row-local statements of a body (loads, constants, element-wise functions,
//! views, stores) into the kernel of `kernel.rs`, and the emission context they share with the
//! cross-lane statements (`cross.rs`) and the reductions (`reduce.rs`).
//!
//! Names in the generated code: `G` lanes per group, `lane` (0..G), `mask` (the group's lanes),
//! `sc` (the group's shared-memory scratch), `rN` the register of statement `N` (a `float`
//! when replicated, a `float rN[SLOTS]` when distributed), `s` a slot and `i = lane + s * G`
//! the element a lane holds in slot `s`.

use super::cross;
use super::regs::{store_kind, Reg, StoreKind};
use crate::error::{internal, Result};
use crate::index::{float_literal, row_expr};
use crate::ops::{unary_expr, unary_grad_expr};
use crate::params::Params;
use crate::writer::Writer;
use pigeon_ir::plan::{BufferId, Level, Plan, RegId, RowIndex, RowSpace, Stmt, StmtOp, Traversal};
use pigeon_ir::{Endpoint, EntityId, Select};
use std::collections::HashMap;

/// What statement emission needs to know about the kernel.
pub(crate) struct Ctx<'a, 'p> {
    /// The plan (buffers).
    pub plan: &'a Plan,
    /// The traversal.
    pub t: &'a Traversal,
    /// Its registers.
    pub regs: &'a [Reg],
    /// The kernel's parameters, collected as they are used.
    pub params: Params<'p>,
    /// Lanes per group.
    pub g: usize,
    /// Most scratch floats per group any statement uses.
    pub scratch: usize,
    /// The C name of the current edge-level row (`row` or `e`).
    pub edge_row: &'static str,
    /// One comment per statement (its plan text).
    pub texts: Vec<String>,
    /// Registers read under another name (in a batch's per-edge loop, the shuffled copy of a
    /// value a lane computed for its own edge: `rN_t`).
    pub names: HashMap<usize, String>,
    /// Statements whose row (a load's row, a matrix-vector product's slice) is an expression
    /// computed earlier (a row index a lane computed for its edge, shuffled to the group).
    pub rows: HashMap<usize, String>,
    /// Loads whose row was fetched earlier into the named slots (`f5[u]`).
    pub preloaded: HashMap<usize, String>,
    /// Edge statements are being written once per node (they do not depend on the edge).
    pub hoisted: bool,
    /// Replicated edge values are stored by every lane that holds an edge (`j < end`), not by
    /// lane 0: each lane computed them for its own edge.
    pub lane_edges: bool,
}

impl Ctx<'_, '_> {
    /// Register `r`.
    pub fn reg(&self, r: RegId) -> Result<&Reg> {
        self.regs.get(r.index()).ok_or_else(|| internal(format!("no register {r}")))
    }

    /// Slots a register of `width` elements takes per lane.
    pub fn slots(&self, width: usize) -> usize {
        width.div_ceil(self.g)
    }

    /// Whether some lanes of the last slot hold no element of a `width`-wide register.
    pub fn padded(&self, width: usize) -> bool {
        !width.is_multiple_of(self.g)
    }

    /// The C name register `r` is read by here (`rN`, or its renamed copy).
    pub fn name(&self, r: RegId) -> String {
        self.names.get(&r.index()).cloned().unwrap_or_else(|| r.to_string())
    }

    /// `rN[s]` for a distributed register, `rN` for a replicated one.
    pub fn elem(&self, r: RegId) -> Result<String> {
        let name = self.name(r);
        Ok(if self.reg(r)?.replicated() { name } else { format!("{name}[s]") })
    }

    /// The row statement `i` (at `level`) reads of a `rows` buffer by `index`: the expression
    /// computed earlier when there is one; the node's own row for hoisted edge statements
    /// (in a node-parallel traversal `dst[e]` is `v`).
    pub fn index_expr(
        &mut self,
        i: usize,
        level: Level,
        index: RowIndex,
        rows: RowSpace,
    ) -> Result<String> {
        if let Some(row) = self.rows.get(&i) {
            return Ok(row.clone());
        }
        if self.hoisted && level == Level::Edge {
            let index = match index {
                RowIndex::Node(Endpoint::Dst) => RowIndex::This,
                RowIndex::Select(Select::DstType) => RowIndex::Select(Select::NodeType),
                other => other,
            };
            return row_expr(&mut self.params, index, RowSpace::Nodes, rows, "v");
        }
        let space = super::regs::stmt_space(self.t.schedule, level);
        let here = self.row(level);
        row_expr(&mut self.params, index, space, rows, here)
    }

    /// The C name of the row a statement of `level` works on.
    pub fn row(&self, level: Level) -> &'static str {
        match level {
            Level::Edge => self.edge_row,
            Level::Node => "v",
        }
    }

    /// A buffer's C name, and how to read element `at` of it (`__ldg` when read-only).
    pub fn read(&mut self, b: BufferId, at: &str) -> String {
        let name = self.params.buffer(b);
        if self.params.is_read_only(b) {
            format!("__ldg(&{name}[{at}])")
        } else {
            format!("{name}[{at}]")
        }
    }

    /// The number of elements in a row of buffer `b`.
    pub fn buffer_width(&self, b: BufferId) -> Result<usize> {
        let buf = self.plan.buffers.get(b).ok_or_else(|| internal(format!("no buffer {b}")))?;
        Ok(buf.shape.numel())
    }

    /// Notes that a statement uses `n` floats of scratch per group.
    pub fn use_scratch(&mut self, n: usize) {
        self.scratch = self.scratch.max(n);
    }
}

/// Opens a loop over the slots `s` of a `width`-wide register, with `i = lane + s * G`.
pub(crate) fn open_slots(w: &mut Writer, ctx: &Ctx, width: usize) {
    w.line("#pragma unroll");
    w.open(format!("for (int s = 0, i = lane; s < {}; ++s, i += G)", ctx.slots(width)));
}

/// The declaration of a distributed register's slots.
pub(crate) fn declare(w: &mut Writer, ctx: &Ctx, i: usize, width: usize) {
    w.line(format!("float r{i}[{}];", ctx.slots(width)));
}

/// Writes statement `i` (a row-local or cross-lane statement; not softmax or aggregate).
pub(crate) fn stmt(w: &mut Writer, ctx: &mut Ctx, i: usize) -> Result<()> {
    let t = ctx.t;
    let s: &Stmt = &t.body[i];
    let width = ctx.regs[i].width;
    match &s.op {
        StmtOp::Load { buf, index } => load(w, ctx, i, s.level, *buf, *index),
        StmtOp::Const(c) => {
            w.line(format!("const float r{i} = {};", float_literal(*c)));
            Ok(())
        }
        StmtOp::Unary { op, x } => {
            let x = ctx.elem(*x)?;
            elementwise(w, ctx, i, width, &unary_expr(*op, &x));
            Ok(())
        }
        StmtOp::View { x, .. } => {
            let x = ctx.name(*x);
            if width == 1 {
                w.line(format!("const float r{i} = {x};"));
            } else {
                w.line(format!("float (&r{i})[{}] = {x};", ctx.slots(width)));
            }
            Ok(())
        }
        StmtOp::Binary { op, a, b } => cross::binary(w, ctx, i, *op, *a, *b),
        StmtOp::Dot { a, b } => cross::dot(w, ctx, i, *a, *b),
        StmtOp::Concat { xs } => cross::concat(w, ctx, i, xs),
        StmtOp::MatVec { x, w: wb, select, form } => {
            cross::matvec(w, ctx, i, *x, *wb, *select, form)
        }
        StmtOp::Store { buf, x, mode } => {
            let rows = ctx.plan.buffers.get(*buf).map(|b| b.rows);
            let rows = rows.ok_or_else(|| internal(format!("no buffer {buf}")))?;
            let kind = store_kind(*mode, s.level, t.schedule, rows)?;
            store(w, ctx, i, s.level, *buf, *x, kind)
        }
        StmtOp::UnaryGrad { op, x, dy } => {
            let (x, dy) = (ctx.elem(*x)?, ctx.elem(*dy)?);
            elementwise(w, ctx, i, width, &unary_grad_expr(*op, &x, &dy));
            Ok(())
        }
        StmtOp::SumTo { x } => super::grad::sum_to(w, ctx, i, *x),
        StmtOp::Transpose { x } => super::grad::transpose(w, ctx, i, *x),
        StmtOp::Narrow { x, start, len } => super::grad::narrow(w, ctx, i, *x, *start, *len),
        StmtOp::GroupSize { group } => super::grad::group_size(w, ctx, i, *group),
        StmtOp::MaxGrad { .. } => super::grad::max_grad_value(w, ctx, i),
        StmtOp::Softmax { .. } | StmtOp::Aggregate { .. } => {
            Err(internal(format!("r{i}: a reduction emitted as a row statement")))
        }
    }
}

/// `rI = expr` element by element (`expr` in terms of `s` and `i`).
pub(crate) fn elementwise(w: &mut Writer, ctx: &Ctx, i: usize, width: usize, expr: &str) {
    if width == 1 {
        w.line(format!("const float r{i} = {expr};"));
        return;
    }
    declare(w, ctx, i, width);
    open_slots(w, ctx, width);
    w.line(format!("r{i}[s] = {expr};"));
    w.close();
}

fn load(
    w: &mut Writer,
    ctx: &mut Ctx,
    i: usize,
    level: Level,
    buf: BufferId,
    index: RowIndex,
) -> Result<()> {
    let rows = ctx.plan.buffers.get(buf).map(|b| b.rows);
    let rows = rows.ok_or_else(|| internal(format!("no buffer {buf}")))?;
    let width = ctx.buffer_width(buf)?;
    if let Some(fetched) = ctx.preloaded.get(&i) {
        w.line(format!("float (&r{i})[{}] = {fetched};", ctx.slots(width)));
        return Ok(());
    }
    let row = ctx.index_expr(i, level, index, rows)?;
    if width == 1 {
        let v = ctx.read(buf, &format!("(size_t)({row})"));
        w.line(format!("const float r{i} = {v};"));
        return Ok(());
    }
    declare(w, ctx, i, width);
    w.line(format!("const size_t at{i} = (size_t)({row}) * {width};"));
    open_slots(w, ctx, width);
    let v = ctx.read(buf, &format!("at{i} + i"));
    if ctx.padded(width) {
        w.line(format!("r{i}[s] = i < {width} ? {v} : 0.0f;"));
    } else {
        w.line(format!("r{i}[s] = {v};"));
    }
    w.close();
    Ok(())
}

/// A store of register `x` (see [`StoreKind`]); replicated values are stored by lane 0.
fn store(
    w: &mut Writer,
    ctx: &mut Ctx,
    i: usize,
    level: Level,
    buf: BufferId,
    x: RegId,
    kind: StoreKind,
) -> Result<()> {
    let width = ctx.buffer_width(buf)?;
    let row = match kind {
        StoreKind::Write => ctx.row(level).to_string(),
        StoreKind::WriteNode | StoreKind::AddNode => "v".to_string(),
        StoreKind::AddAtomic(array) => format!("{}[{}]", ctx.params.array(array), ctx.edge_row),
    };
    let name = ctx.params.buffer(buf);
    let value = ctx.elem(x)?;
    let replicated = ctx.reg(x)?.replicated();
    let target = if replicated { format!("p{i}[0]") } else { format!("p{i}[i]") };
    let op = match kind {
        StoreKind::Write | StoreKind::WriteNode => format!("{target} = {value};"),
        StoreKind::AddNode => format!("{target} += {value};"),
        StoreKind::AddAtomic(_) => format!("atomicAdd(&{target}, {value});"),
    };
    w.line(format!("float* p{i} = {name} + (size_t)({row}) * {width};"));
    if replicated {
        let who = if ctx.lane_edges && level == Level::Edge { "j < end" } else { "lane == 0" };
        w.line(format!("if ({who}) {op}"));
    } else {
        open_slots(w, ctx, width);
        if ctx.padded(width) {
            w.line(format!("if (i < {width}) {op}"));
        } else {
            w.line(op);
        }
        w.close();
    }
    Ok(())
}
