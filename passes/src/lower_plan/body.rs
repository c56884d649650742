//! Traversal bodies: a traversal group's instructions as register statements (part of
//! [`super::lower_to_plan`]).
//!
//! Statements are emitted edge level first, then node level (node-parallel groups), each level
//! in definition order. An operand computed in the group is its register; any other operand is
//! a `load` through the row index of its inlined gathers and slices (loads are shared per
//! buffer, index and level); an inlined constant is a `const`. A value that needs a buffer is
//! stored right after it is computed.

use super::{internal, Cx};
use crate::fuse::{compose_index, resolve};
use crate::PassError;
use pigeon_ir::inter::{Domain, Index, Op, Select, Shape, ValueId};
use pigeon_ir::plan::{
    Buffer, BufferId, Level, RegId, RowIndex, Schedule, Stmt, StmtOp, StoreMode, Traversal,
};
use pigeon_ir::Endpoint;
use pigeon_ir::EntityId;
use std::collections::HashMap;

/// A body under construction.
struct Body<'c, 'a> {
    cx: &'c Cx<'a>,
    stmts: Vec<Stmt>,
    regs: HashMap<ValueId, RegId>,
    loads: HashMap<(BufferId, RowIndex, Level), RegId>,
    consts: HashMap<(u64, Level), RegId>,
}

impl Body<'_, '_> {
    fn push(&mut self, level: Level, op: StmtOp, shape: Shape) -> RegId {
        self.stmts.push(Stmt { level, op, shape });
        RegId::new(self.stmts.len() - 1)
    }

    fn load(&mut self, buf: BufferId, index: RowIndex, level: Level, shape: Shape) -> RegId {
        if let Some(&r) = self.loads.get(&(buf, index, level)) {
            return r;
        }
        let r = self.push(level, StmtOp::Load { buf, index }, shape);
        self.loads.insert((buf, index, level), r);
        r
    }

    fn constant(&mut self, c: f64, level: Level) -> RegId {
        if let Some(&r) = self.consts.get(&(c.to_bits(), level)) {
            return r;
        }
        let r = self.push(level, StmtOp::Const(c), Shape::scalar());
        self.consts.insert((c.to_bits(), level), r);
        r
    }

    /// The register holding operand `p` at `level`.
    fn operand(&mut self, p: ValueId, level: Level) -> Result<RegId, PassError> {
        if let Some(&r) = self.regs.get(&p) {
            return Ok(r);
        }
        let module = self.cx.module;
        if let (Op::Const(c), false) = (&module.insts[p].op, self.cx.materialised[p.index()]) {
            return Ok(self.constant(*c, level));
        }
        let (buf, index) = self.cx.read(p)?;
        let shape = self.source_shape(p);
        Ok(self.load(buf, index, level, shape))
    }

    /// The per-row shape of the buffer `p` is read from (a slice reads its weight's rows).
    fn source_shape(&self, p: ValueId) -> Shape {
        self.cx.module.ty(p).shape.clone()
    }

    /// Emits member `m` at `level` and, when it needs a buffer, its store.
    fn member(&mut self, m: ValueId, level: Level, store: bool) -> Result<(), PassError> {
        let module = self.cx.module;
        let inst = &module.insts[m];
        let shape = inst.ty.shape.clone();
        let op = match &inst.op {
            Op::Const(c) => StmtOp::Const(*c),
            Op::Gather { .. } | Op::Slice { .. } => {
                let (buf, index) = self.read_through(m)?;
                StmtOp::Load { buf, index }
            }
            Op::Linear { x, w, by } => {
                let x_reg = self.operand(*x, level)?;
                let (wbuf, windex) = self.cx.read(*w)?;
                let select = match (windex, *by) {
                    (RowIndex::This, by) => by,
                    (RowIndex::Select(s), Select::Same) => s,
                    _ => return Err(internal(format!("{m}: weight read through {windex:?}"))),
                };
                let (_, form) =
                    pigeon_ir::shape::linear(&module.ty(*x).shape, &module.ty(*w).shape)
                        .ok_or_else(|| internal(format!("{m}: shapes do not contract")))?;
                StmtOp::MatVec { x: x_reg, w: wbuf, select, form }
            }
            Op::Unary { op, x } => StmtOp::Unary { op: *op, x: self.operand(*x, level)? },
            Op::Binary { op, a, b } => {
                let a = self.operand(*a, level)?;
                StmtOp::Binary { op: *op, a, b: self.operand(*b, level)? }
            }
            Op::Dot { a, b } => {
                let a = self.operand(*a, level)?;
                StmtOp::Dot { a, b: self.operand(*b, level)? }
            }
            Op::View { x, shape } => {
                StmtOp::View { x: self.operand(*x, level)?, shape: shape.clone() }
            }
            Op::Concat { xs } => {
                let xs = xs.iter().map(|&x| self.operand(x, level)).collect::<Result<_, _>>()?;
                StmtOp::Concat { xs }
            }
            Op::EdgeSoftmax { x } => StmtOp::Softmax { x: self.operand(*x, Level::Edge)? },
            Op::Aggregate { op, group, x } => {
                StmtOp::Aggregate { op: *op, group: *group, x: self.operand(*x, Level::Edge)? }
            }
            Op::UnaryGrad { op, x, dy } => {
                let x = self.operand(*x, level)?;
                StmtOp::UnaryGrad { op: *op, x, dy: self.operand(*dy, level)? }
            }
            Op::SumTo { x, .. } => StmtOp::SumTo { x: self.operand(*x, level)? },
            Op::Transpose { x } => StmtOp::Transpose { x: self.operand(*x, level)? },
            Op::Narrow { x, start, len } => {
                StmtOp::Narrow { x: self.operand(*x, level)?, start: *start, len: *len }
            }
            Op::GroupSize { group } => StmtOp::GroupSize { group: *group },
            Op::MaxGrad { group, x, dy } => {
                let x = self.operand(*x, Level::Edge)?;
                let (buf, index) = self.cx.read(*dy)?;
                let index = compose_index(index, Index::Node(Endpoint::Dst))
                    .ok_or_else(|| internal(format!("{m}: {dy} is not readable per edge")))?;
                let dy = self.load(buf, index, Level::Edge, module.ty(*dy).shape.clone());
                StmtOp::MaxGrad { group: *group, x, dy }
            }
            op @ Op::Scatter { x, .. } => {
                let mode = crate::fuse::scatter_store(op).ok_or_else(|| no_template(m, op))?;
                let x = self.operand(*x, Level::Edge)?;
                let buf =
                    self.cx.buf_of.get(&m).copied().ok_or_else(|| internal(format!("{m}")))?;
                let store = StmtOp::Store { buf, x, mode };
                self.push(Level::Edge, store, Shape::scalar());
                return Ok(());
            }
            Op::Input { .. } | Op::Weight(_) => {
                return Err(internal(format!("{m}: inputs and weights are not computed")))
            }
            op => return Err(no_template(m, op)),
        };
        let r = self.push(level, op, shape);
        self.regs.insert(m, r);
        if store {
            let buf = self.cx.buf_of.get(&m).copied().ok_or_else(|| internal(format!("{m}")))?;
            self.push(level, StmtOp::Store { buf, x: r, mode: StoreMode::Write }, Shape::scalar());
        }
        Ok(())
    }

    /// The buffer and index a materialised gather or slice `m` reads its operand through.
    fn read_through(&self, m: ValueId) -> Result<(BufferId, RowIndex), PassError> {
        let cx = self.cx;
        let bad = || internal(format!("{m}: no single row index reads its operand"));
        let (src, index) = match &cx.module.insts[m].op {
            Op::Gather { x, index } => {
                let (s, inner) = resolve(cx.module, &cx.materialised, *x).ok_or_else(bad)?;
                (s, compose_index(inner, *index).ok_or_else(bad)?)
            }
            Op::Slice { w, by, .. } => {
                let (s, inner) = resolve(cx.module, &cx.materialised, *w).ok_or_else(bad)?;
                match (inner, *by) {
                    (RowIndex::This, Select::Same) => (s, RowIndex::This),
                    (RowIndex::This, by) => (s, RowIndex::Select(by)),
                    _ => return Err(bad()),
                }
            }
            _ => return Err(bad()),
        };
        let buf = cx.buf_of.get(&src).copied().ok_or_else(bad)?;
        Ok((buf, index))
    }
}

/// The traversal of group `g` (for error messages) with the given schedule hint.
pub(super) fn lower_traversal(
    cx: &Cx,
    g: usize,
    schedule: Schedule,
    members: &[ValueId],
    needed: &[bool],
) -> Result<Traversal, PassError> {
    let mut body = Body {
        cx,
        stmts: Vec::new(),
        regs: HashMap::new(),
        loads: HashMap::new(),
        consts: HashMap::new(),
    };
    let module = cx.module;
    // A scatter is a node (or compact) value computed by edge-level adds.
    let scatter = |m: ValueId| crate::fuse::scatter_store(&module.insts[m].op).is_some();
    let is_node = |m: ValueId| module.ty(m).domain == Domain::Node && !scatter(m);
    let node_parallel = schedule == Schedule::NodeParallel;
    for &m in members {
        if !(node_parallel && is_node(m)) {
            let edge_work = module.ty(m).domain == Domain::Edge || scatter(m);
            if node_parallel && !edge_work {
                return Err(internal(format!("g{g}: {m} is neither an edge nor a node value")));
            }
            body.member(m, Level::Edge, needed[m.index()])?;
        }
    }
    if node_parallel {
        for &m in members.iter().filter(|&&m| is_node(m)) {
            body.member(m, Level::Node, needed[m.index()])?;
        }
    }
    Ok(Traversal { schedule, body: body.stmts })
}

/// A `Rows` traversal copying buffer `src` (described by `desc`) into `dst`.
pub(super) fn copy_rows(src: BufferId, dst: BufferId, desc: &Buffer) -> Traversal {
    let body = vec![
        Stmt {
            level: Level::Edge,
            op: StmtOp::Load { buf: src, index: RowIndex::This },
            shape: desc.shape.clone(),
        },
        Stmt {
            level: Level::Edge,
            op: StmtOp::Store { buf: dst, x: RegId::new(0), mode: StoreMode::Write },
            shape: Shape::scalar(),
        },
    ];
    Traversal { schedule: Schedule::Rows(desc.rows), body }
}

/// The error for an instruction no traversal statement computes.
fn no_template(m: ValueId, op: &Op) -> PassError {
    PassError::Unsupported(format!(
        "{m}: `{}` has no kernel template (scatters go into source nodes or compact rows only; \
         weight gradients are their own kernels)",
        pigeon_ir::text::op(op)
    ))
}
