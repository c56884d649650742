//! Traversal statements of the plan verifier (invariants 8 to 12; part of
//! [`super::verify_plan`]).

use super::{check_index, domain, Access, Verifier};
use crate::infer::check_select;
use crate::inter::Shape;
use crate::plan::{
    Buffer, BufferId, KernelId, Layout, Level, RegId, RowIndex, RowSpace, Schedule, StmtOp,
    StoreMode, Traversal,
};
use crate::plan_text::{form, row_space};
use crate::shape;
use crate::verify::{Location, VerifyError};
use crate::EntityId;
use std::collections::BTreeSet;

/// What a statement defines: its level, and its shape unless it is a store.
type Def = (Level, Option<Shape>);

impl<'a> Verifier<'a> {
    pub(super) fn traversal(&mut self, k: KernelId, t: &'a Traversal) -> Access {
        let mut acc: Access = (Vec::new(), Vec::new(), BTreeSet::new());
        match t.schedule {
            Schedule::NodeParallel => {
                acc.2.insert(Layout::InCsr);
            }
            Schedule::Rows(RowSpace::Compact(e)) => {
                acc.2.insert(Layout::Compact(e));
            }
            _ => {}
        }
        let mut defs: Vec<Def> = Vec::new();
        for (i, s) in t.body.iter().enumerate() {
            let r = RegId::new(i);
            let at = Location::Stmt(k, r);
            let iter = match (t.schedule, s.level) {
                (Schedule::Rows(space), _) => space,
                (Schedule::NodeParallel, Level::Node) => RowSpace::Nodes,
                _ => RowSpace::Edges,
            };
            match &s.op {
                StmtOp::Load { buf, index } => {
                    acc.0.push((at.clone(), *buf));
                    if let RowIndex::EdgeToCompact(e) = index {
                        acc.2.insert(Layout::Compact(*e));
                    }
                }
                StmtOp::MatVec { w, .. } => acc.0.push((at.clone(), *w)),
                StmtOp::Store { buf, .. } => acc.1.push((at.clone(), *buf)),
                _ => {}
            }
            let operands = self.operands(&at, (i, t.body.len()), &s.op, &defs);
            self.levels(&at, t.schedule, s.level, &s.op, &operands);
            let inferred =
                operands.map(|ops| self.infer(&at, (iter, s.level), &s.op, &ops, &s.shape));
            if let Some(Some(shape)) = inferred {
                if shape != s.shape {
                    let msg =
                        format!("declared shape {} differs from the inferred {shape}", s.shape);
                    self.push(at, 9, msg);
                }
            }
            let is_store = matches!(s.op, StmtOp::Store { .. });
            defs.push((s.level, (!is_store).then(|| s.shape.clone())));
        }
        acc
    }

    /// Invariant 8: the operands' definitions, or `None` when one is not an earlier value.
    fn operands(
        &mut self,
        at: &Location,
        (i, len): (usize, usize),
        op: &StmtOp,
        defs: &[Def],
    ) -> Option<Vec<(Level, Shape)>> {
        let regs = op.operands();
        let mut out = Some(Vec::new());
        for x in regs {
            let why = match defs.get(x.index()) {
                Some((level, Some(shape))) => {
                    if let Some(v) = out.as_mut() {
                        v.push((*level, shape.clone()));
                    }
                    continue;
                }
                Some((_, None)) => "a store, which defines no value",
                None if x.index() == i => "itself",
                None if x.index() < len => "a later statement",
                None => "no statement",
            };
            self.push(at.clone(), 8, format!("operand {x} refers to {why}"));
            out = None;
        }
        out
    }

    /// Invariant 10 (with `operands` given when they all exist).
    fn levels(
        &mut self,
        at: &Location,
        sched: Schedule,
        level: Level,
        op: &StmtOp,
        operands: &Option<Vec<(Level, Shape)>>,
    ) {
        let np = sched == Schedule::NodeParallel;
        let mut bad = |msg: String| {
            self.errs.push(VerifyError { at: at.clone(), invariant: 10, message: msg })
        };
        if level == Level::Node && !np {
            bad("node-level statement outside a node_parallel traversal".to_string());
        }
        let ops = operands.as_deref().unwrap_or(&[]);
        match op {
            StmtOp::Softmax { .. } | StmtOp::GroupSize { .. } | StmtOp::MaxGrad { .. } => {
                let name = crate::plan_text::stmt_op(op);
                let name = name.split(' ').next().unwrap_or("");
                if !np {
                    bad(format!("{name} outside a node_parallel traversal"));
                }
                if level != Level::Edge || ops.iter().any(|o| o.0 != Level::Edge) {
                    bad(format!("{name} is an edge-level statement of edge registers"));
                }
            }
            StmtOp::Aggregate { .. } => {
                if !np {
                    bad("aggregate outside a node_parallel traversal (lower it to a store add_into_dst)".to_string());
                }
                if level != Level::Node || ops.iter().any(|o| o.0 != Level::Edge) {
                    bad("aggregate is a node-level statement of an edge register".to_string());
                }
            }
            _ => {
                if ops.iter().any(|o| o.0 != level) {
                    bad(match level {
                        Level::Node => "node-level statement reads an edge-level register".into(),
                        Level::Edge => "edge-level statement reads a node-level register".into(),
                    });
                }
            }
        }
    }
}

impl<'a> Verifier<'a> {
    /// Invariants 9, 11 and 12 of one statement whose operands exist: its inferred shape, or
    /// `None` (after reporting why) when it has none.
    fn infer(
        &mut self,
        at: &Location,
        (iter, level): (RowSpace, Level),
        op: &StmtOp,
        ops: &[(Level, Shape)],
        declared: &Shape,
    ) -> Option<Shape> {
        let shape_of = |i: usize| ops.get(i).map(|o| &o.1);
        let mut fail = |inv: u32, msg: String| {
            self.errs.push(VerifyError { at: at.clone(), invariant: inv, message: msg });
            None
        };
        let (x, y) = (shape_of(0), shape_of(1));
        match op {
            StmtOp::Load { buf, index } => {
                let b = self.buf(at, *buf)?;
                if let Err(why) = check_index(iter, *index, b.rows) {
                    self.push(at.clone(), 11, format!("load {buf}: {why}"));
                }
                Some(b.shape.clone())
            }
            StmtOp::Const(_) => Some(Shape::scalar()),
            StmtOp::Unary { .. } | StmtOp::Softmax { .. } | StmtOp::Aggregate { .. } => x.cloned(),
            StmtOp::Binary { .. } => match shape::broadcast(x?, y?) {
                Some(s) => Some(s),
                None => fail(9, format!("shapes {} and {} do not broadcast", x?, y?)),
            },
            StmtOp::Dot { .. } => match shape::dot(x?, y?) {
                Some(s) => Some(s),
                None => fail(9, format!("dot needs matching last axes, got {} and {}", x?, y?)),
            },
            StmtOp::View { shape: to, .. } => {
                if x?.numel() == to.numel() {
                    Some(to.clone())
                } else {
                    fail(9, format!("cannot view {} as {to}", x?))
                }
            }
            StmtOp::Concat { .. } => {
                let parts: Vec<&Shape> = ops.iter().map(|o| &o.1).collect();
                match shape::concat(&parts) {
                    Some(s) => Some(s),
                    None if parts.is_empty() => fail(9, "concat has no operand".to_string()),
                    None => fail(9, "operands do not concatenate along the last axis".to_string()),
                }
            }
            StmtOp::MatVec { w, select, form: f, .. } => self.matvec(at, iter, x?, *w, *select, f),
            StmtOp::UnaryGrad { .. } | StmtOp::MaxGrad { .. } => {
                if x? == y? {
                    x.cloned()
                } else {
                    fail(9, format!("operand and adjoint differ: {} and {}", x?, y?))
                }
            }
            StmtOp::GroupSize { .. } => Some(Shape::scalar()),
            StmtOp::SumTo { .. } => {
                if shape::broadcast(declared, x?).as_ref() == Some(x?) {
                    Some(declared.clone())
                } else {
                    fail(9, format!("{declared} does not broadcast to {}", x?))
                }
            }
            StmtOp::Transpose { .. } => match x?.dims() {
                [lead @ .., k, n] => Some(Shape(lead.iter().copied().chain([*n, *k]).collect())),
                _ => fail(9, format!("cannot transpose a {} row", x?)),
            },
            StmtOp::Narrow { start, len, .. } => match x?.dims() {
                [lead @ .., last] if start + len <= *last && *len > 0 => {
                    Some(Shape(lead.iter().copied().chain([*len]).collect()))
                }
                _ => fail(9, format!("cannot take {len} from {start} of a {} row", x?)),
            },
            StmtOp::Store { buf, mode, .. } => {
                let b = self.buf(at, *buf)?;
                self.store(at, iter, level, *buf, b, *mode);
                if x? != &b.shape {
                    self.push(
                        at.clone(),
                        9,
                        format!("stores a {} register into {buf} of shape {}", x?, b.shape),
                    );
                }
                Some(Shape::scalar())
            }
        }
    }

    fn matvec(
        &mut self,
        at: &Location,
        iter: RowSpace,
        x: &Shape,
        w: BufferId,
        select: crate::Select,
        f: &crate::shape::LinearForm,
    ) -> Option<Shape> {
        let b = self.buf(at, w)?;
        if check_select(domain(iter), &domain(b.rows), select).is_err() {
            let msg = format!(
                "matvec {w}: {} rows cannot select {} rows by {select}",
                row_space(iter),
                row_space(b.rows)
            );
            self.push(at.clone(), 11, msg);
        }
        match shape::linear(x, &b.shape) {
            None => {
                self.push(
                    at.clone(),
                    9,
                    format!("cannot multiply a {x} row by a {} slice", b.shape),
                );
                None
            }
            Some((out, g)) => {
                if &g != f {
                    let msg = format!("form {} differs from the operands' {}", form(f), form(&g));
                    self.push(at.clone(), 9, msg);
                }
                Some(out)
            }
        }
    }

    /// Invariant 12.
    fn store(
        &mut self,
        at: &Location,
        iter: RowSpace,
        level: Level,
        id: BufferId,
        b: &Buffer,
        mode: StoreMode,
    ) {
        let msg = match mode {
            StoreMode::Write if b.rows != iter => format!(
                "store {id} writes {} rows into {} rows",
                row_space(iter),
                row_space(b.rows)
            ),
            StoreMode::Write => return,
            _ => match mode.target_rows() {
                Some(target)
                    if level != Level::Edge || !mode.stores_from(iter) || b.rows != target =>
                {
                    format!(
                        "store {id}: {} adds {} rows into {} rows, not {} rows into {} rows",
                        crate::plan_text::store_mode(mode),
                        mode.sources(),
                        row_space(target),
                        row_space(iter),
                        row_space(b.rows)
                    )
                }
                _ => return,
            },
        };
        self.push(at.clone(), 12, msg);
    }
}
