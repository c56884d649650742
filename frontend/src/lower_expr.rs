//! Lowering of value expressions to IR instructions (see `lower.rs` for the statements).

use crate::ast::*;
use crate::diag::Diagnostic;
use crate::funcs::Func;
use crate::lower::{Bind, Env, Lowerer};
use pigeon_ir::InputKind;
use pigeon_ir::{BinaryOp, Domain, Endpoint, Index, Op, Select, UnaryOp, ValueId};

impl<'a> Lowerer<'a> {
    /// Lowers `e` in a definition of `ctx` rows (`Node` or `Edge`).
    pub(crate) fn lower_expr(
        &mut self,
        env: &mut Env<'a>,
        e: &Expr,
        ctx: Domain,
    ) -> Option<ValueId> {
        match &e.kind {
            ExprKind::Int(v) => self.emit(Op::Const(*v as f64), e.span, "constant"),
            ExprKind::Float(v) => self.emit(Op::Const(*v), e.span, "constant"),
            ExprKind::Ref(r) => self.operand_ref(env, r),
            ExprKind::Endpoint(end, r) => {
                let x = self.value_ref(env, r)?;
                let index = Index::Node(match end {
                    End::Src => Endpoint::Src,
                    End::Dst => Endpoint::Dst,
                });
                self.emit(Op::Gather { x, index }, e.span, "endpoint read")
            }
            ExprKind::Slice { weight, sel, .. } => {
                let w = self.weight_value(env, weight)?;
                self.emit(Op::Slice { w, by: select(*sel), domain: ctx }, e.span, "weight slice")
            }
            ExprKind::TableSlice { end, table, .. } => {
                let ep = match end {
                    End::Src => Endpoint::Src,
                    End::Dst => Endpoint::Dst,
                };
                let x = self.table_value(env, table, ep, e.span)?;
                self.emit(Op::Gather { x, index: Index::EdgeToCompact(ep) }, e.span, "table read")
            }
            ExprKind::Neg(x) => {
                let x = self.lower_expr(env, x, ctx)?;
                self.emit(Op::Unary { op: UnaryOp::Neg, x }, e.span, "negation")
            }
            ExprKind::Binary(BinOp::MatMul, x, w) => {
                let x = self.lower_expr(env, x, ctx);
                let (w, by) = self.matmul_weight(env, w)?;
                let mut x = x?;
                if by != Select::Same {
                    x = self.broadcast_to(x, ctx, e.span)?;
                }
                self.emit(Op::Linear { x, w, by }, e.span, "`@`")
            }
            ExprKind::Binary(op, a, b) => {
                let a = self.lower_expr(env, a, ctx);
                let b = self.lower_expr(env, b, ctx);
                let op2 = match op {
                    BinOp::Add => BinaryOp::Add,
                    BinOp::Sub => BinaryOp::Sub,
                    BinOp::Mul => BinaryOp::Mul,
                    BinOp::Div | BinOp::MatMul => BinaryOp::Div,
                };
                self.emit(
                    Op::Binary { op: op2, a: a?, b: b? },
                    e.span,
                    &format!("`{}`", op.symbol()),
                )
            }
            ExprKind::Call { func, args } => self.lower_call(env, func, args, e.span, ctx),
        }
    }

    /// A name used as an operand: a parameter (a constant), a value, a shared weight, a layer.
    fn operand_ref(&mut self, env: &mut Env<'a>, r: &ValueRef) -> Option<ValueId> {
        match (env.binds.get(&r.name.name), &r.field) {
            (Some(Bind::Param(v)), None) => {
                let v = *v as f64;
                self.emit(Op::Const(v), r.span, "parameter")
            }
            (Some(Bind::Weight { .. }), None) => self.weight_value(env, &r.name),
            _ => self.value_ref(env, r),
        }
    }

    /// The value a reference to a node or edge value (or a layer output) stands for.
    pub(crate) fn value_ref(&mut self, env: &mut Env<'a>, r: &ValueRef) -> Option<ValueId> {
        let found = match (env.binds.get(&r.name.name), &r.field) {
            (Some(Bind::Value(v)), None) => return *v,
            (Some(Bind::Layer(outs)), field) => {
                let outs = outs.as_ref()?;
                match field {
                    Some(f) => outs.iter().find(|(n, _)| *n == f.name).map(|(_, v)| *v),
                    None if outs.len() == 1 => outs.first().map(|(_, v)| *v),
                    None => None,
                }
            }
            _ => None,
        };
        match found {
            Some(v) => v,
            None => {
                self.report(Diagnostic::error(
                    format!("internal error: `{r}` is not a value"),
                    r.span,
                ));
                None
            }
        }
    }

    /// The `Op::Weight` instruction of weight `name`, created on first use.
    fn weight_value(&mut self, env: &mut Env<'a>, name: &Ident) -> Option<ValueId> {
        let Some(Bind::Weight { id, kind, inst }) = env.binds.get(&name.name).cloned() else {
            self.report(Diagnostic::error(
                format!("internal error: `{}` is not a weight", name.name),
                name.span,
            ));
            return None;
        };
        if let Some(v) = inst {
            return Some(v);
        }
        let id = id?;
        let w = &self.module.weights[id];
        let ty = pigeon_ir::Type {
            domain: kind.domain(),
            shape: w.shape.clone(),
            dtype: pigeon_ir::DType::F32,
        };
        let full = w.name.clone();
        let v =
            self.module.insts.push(pigeon_ir::Inst { op: Op::Weight(id), ty, name: Some(full) });
        env.binds.insert(name.name.clone(), Bind::Weight { id: Some(id), kind, inst: Some(v) });
        Some(v)
    }

    /// The compact input holding per-relation table `name`, read at endpoint `ep`: made on
    /// the first read; a table read at both endpoints is an error (its rows are keyed by one).
    fn table_value(
        &mut self,
        env: &mut Env<'a>,
        name: &Ident,
        ep: Endpoint,
        span: Span,
    ) -> Option<ValueId> {
        let Some(Bind::Table { name: full, shape, init, inst }) =
            env.binds.get(&name.name).cloned()
        else {
            let d = Diagnostic::error(
                format!("internal error: `{}` is not a table", name.name),
                name.span,
            );
            self.report(d);
            return None;
        };
        match inst {
            Some((first, v)) if first == ep => Some(v),
            Some((first, _)) => {
                let d = Diagnostic::error(
                    format!(
                        "table `{}` is read at `{ep}` here and at `{first}` elsewhere",
                        name.name
                    ),
                    span,
                )
                .with_label(format!("first read as `{first}.{}[relation]`", name.name))
                .with_note(
                    "a per-relation table has one row per (node, relation) pair of one endpoint; \
                     declare a second table for the other endpoint",
                );
                self.report(d);
                None
            }
            None => {
                let ty = pigeon_ir::Type {
                    domain: Domain::Compact(ep),
                    shape: shape?,
                    dtype: pigeon_ir::DType::F32,
                };
                let op = Op::Input { name: full.clone(), kind: InputKind::Table(init) };
                let v =
                    self.module.insts.push(pigeon_ir::Inst { op, ty, name: Some(full.clone()) });
                let bind = Bind::Table { name: full, shape: None, init, inst: Some((ep, v)) };
                env.binds.insert(name.name.clone(), bind);
                Some(v)
            }
        }
    }

    /// The right side of `@`: the weight's value and how rows select its slices.
    fn matmul_weight(&mut self, env: &mut Env<'a>, w: &Expr) -> Option<(ValueId, Select)> {
        match &w.kind {
            ExprKind::Ref(r) if r.field.is_none() => {
                Some((self.weight_value(env, &r.name)?, Select::Same))
            }
            ExprKind::Slice { weight, sel, .. } => {
                Some((self.weight_value(env, weight)?, select(*sel)))
            }
            _ => {
                self.report(Diagnostic::error("internal error: `@` without a weight", w.span));
                None
            }
        }
    }

    fn lower_call(
        &mut self,
        env: &mut Env<'a>,
        func: &Ident,
        args: &[Arg],
        span: Span,
        ctx: Domain,
    ) -> Option<ValueId> {
        let Some(f) = Func::lookup(&func.name) else {
            self.report(Diagnostic::error(
                format!("internal error: unknown function `{}`", func.name),
                func.span,
            ));
            return None;
        };
        let what = format!("call of `{}`", func.name);
        let arg_ctx = match f {
            Func::Softmax | Func::Aggregate(..) => Domain::Edge,
            _ => ctx,
        };
        let mut xs = Vec::new();
        let mut ok = true;
        let mut number = None;
        let mut shape = None;
        for (i, a) in args.iter().enumerate() {
            match a {
                Arg::Shape(ds, _) => shape = self.shape(ds, &env.params.clone()),
                Arg::Value(x)
                    if i == 1 && matches!(f, Func::LeakyRelu | Func::Elu | Func::Dropout) =>
                {
                    number = crate::check_expr::number(x)
                }
                Arg::Value(x) => match self.lower_expr(env, x, arg_ctx) {
                    Some(v) => xs.push(v),
                    None => ok = false,
                },
            }
        }
        if !ok {
            return None;
        }
        let first = *xs.first()?;
        let op = match f {
            Func::Unary(op) => Op::Unary { op, x: first },
            Func::LeakyRelu => {
                Op::Unary { op: UnaryOp::LeakyRelu(number.unwrap_or(0.01)), x: first }
            }
            Func::Elu => Op::Unary { op: UnaryOp::Elu(number.unwrap_or(1.0)), x: first },
            Func::Dropout => {
                let x = self.broadcast_to(first, ctx, span)?;
                let ty = self.module.insts[x].ty.clone();
                let name = format!("dropout:{}", self.dropouts);
                self.dropouts += 1;
                let op = Op::Input { name: name.clone(), kind: InputKind::Dropout(number?) };
                let mask = self.emit_typed(op, ty, name);
                Op::Binary { op: BinaryOp::Mul, a: x, b: mask }
            }
            Func::Maximum => Op::Binary { op: BinaryOp::Max, a: first, b: *xs.get(1)? },
            Func::Dot => Op::Dot { a: first, b: *xs.get(1)? },
            Func::View => Op::View { x: first, shape: shape? },
            Func::Concat => Op::Concat { xs },
            Func::Softmax => Op::EdgeSoftmax { x: self.broadcast_to(first, Domain::Edge, span)? },
            Func::Aggregate(op, group) => {
                Op::Aggregate { op, group, x: self.broadcast_to(first, Domain::Edge, span)? }
            }
        };
        self.emit(op, span, &what)
    }
}

/// The IR selector of a slice.
fn select(sel: SliceSel) -> Select {
    match sel {
        SliceSel::Relation => Select::Relation,
        SliceSel::NodeType => Select::NodeType,
        SliceSel::SrcType => Select::SrcType,
        SliceSel::DstType => Select::DstType,
    }
}
