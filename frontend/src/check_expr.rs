//! Checking of value expressions: names, functions and argument counts, and the domain rules
//! (node vs edge vs shared) of docs/language.md.

use crate::ast::*;
use crate::check::{table_bare, Dom, FileChecker, Scope, Sym};
use crate::diag::{suggest, Diagnostic};
use crate::funcs::{Func, FUNCS};

impl<'a> FileChecker<'a> {
    /// Checks `e` as part of a definition of `ctx` rows (an aggregation's argument is checked as
    /// an edge expression) and returns its domain, or `None` after an error.
    pub(crate) fn check_expr(&mut self, scope: &Scope<'a>, e: &Expr, ctx: RowKind) -> Option<Dom> {
        match &e.kind {
            ExprKind::Int(_) | ExprKind::Float(_) => Some(Dom::Shared),
            ExprKind::Ref(v) => self.check_ref(scope, v, ctx),
            ExprKind::Endpoint(end, v) => {
                let rows = self.value_ref(scope, v);
                if ctx == RowKind::Node {
                    let d = Diagnostic::error(format!("`{end}.{v}` in a node expression"), e.span)
                        .with_label(format!(
                            "`{end}` only exists in edge definitions and inside aggregations"
                        ));
                    self.diags.push(d);
                    return None;
                }
                if rows == Some(RowKind::Edge) {
                    let d = Diagnostic::error(
                        format!("`{end}.` reads a node value, but `{v}` is an edge value"),
                        v.span,
                    )
                    .with_label("an edge value");
                    self.diags.push(d.with_note(format!("use the edge value as `{v}`")));
                    return None;
                }
                rows.map(|_| Dom::Rows(RowKind::Edge))
            }
            ExprKind::Slice { weight, sel, sel_span } => {
                let kind = self.weight_kind(scope, weight)?;
                self.check_slice(weight, kind, *sel, *sel_span, e.span, ctx)
            }
            ExprKind::TableSlice { end, table, sel, sel_span } => {
                self.check_table_slice(scope, e, *end, table, *sel, *sel_span, ctx)
            }
            ExprKind::Neg(x) => self.check_expr(scope, x, ctx),
            ExprKind::Binary(BinOp::MatMul, x, w) => {
                let dx = self.check_expr(scope, x, ctx);
                let dw = self.check_matmul_weight(scope, w, ctx);
                self.join(dx?, dw?, e.span)
            }
            ExprKind::Binary(_, a, b) => {
                let da = self.check_expr(scope, a, ctx);
                let db = self.check_expr(scope, b, ctx);
                self.join(da?, db?, e.span)
            }
            ExprKind::Call { func, args } => self.check_call(scope, func, args, e.span, ctx),
        }
    }

    fn check_ref(&mut self, scope: &Scope<'a>, v: &ValueRef, ctx: RowKind) -> Option<Dom> {
        let sym = self.lookup(scope, &v.name)?;
        let rows = match (sym, &v.field) {
            (Sym::Layer(outs), Some(field)) => {
                self.layer_field(&v.name, outs.as_deref()?, field)?
            }
            (Sym::Layer(outs), None) => self.layer_single(&v.name, outs.as_deref()?)?,
            (_, Some(field)) => {
                let d = Diagnostic::error(format!("`{}` is not a layer", v.name.name), v.name.span)
                    .with_label(format!("only a layer has outputs such as `.{}`", field.name));
                self.diags.push(d);
                return None;
            }
            (Sym::Param, None) | (Sym::Weight(WeightSlicing::Shared), None) => {
                return Some(Dom::Shared)
            }
            (Sym::Weight(kind), None) => {
                self.diags.push(unsliced(&v.name, kind, ctx, v.span));
                return None;
            }
            (Sym::Table, None) => {
                self.diags.push(table_bare(&v.name, v.span));
                return None;
            }
            (Sym::Value(rows), None) => rows?,
        };
        let name = v.to_string();
        match (rows, ctx) {
            (RowKind::Node, RowKind::Edge) => {
                let d = Diagnostic::error(
                    format!("node value `{name}` used bare in an edge expression"),
                    v.span,
                )
                .with_label(format!("use `src.{name}` or `dst.{name}`"));
                self.diags.push(d);
                None
            }
            (RowKind::Edge, RowKind::Node) => {
                let d = Diagnostic::error(
                    format!("edge value `{name}` used outside an aggregation"),
                    v.span,
                )
                .with_label(format!("aggregate it, e.g. `sum({name})`"));
                self.diags.push(d);
                None
            }
            _ => Some(Dom::Rows(rows)),
        }
    }

    /// `src.E[relation]`: `E` a per-relation table, read in an edge expression.
    #[allow(clippy::too_many_arguments)]
    fn check_table_slice(
        &mut self,
        scope: &Scope<'a>,
        e: &Expr,
        end: End,
        table: &Ident,
        sel: SliceSel,
        sel_span: Span,
        ctx: RowKind,
    ) -> Option<Dom> {
        let t = &table.name;
        let err = match self.lookup(scope, table)? {
            Sym::Table if sel != SliceSel::Relation => {
                Diagnostic::error(format!("`{t}` is a per-relation node table"), sel_span)
                    .with_label(format!("slice it with `{end}.{t}[relation]`"))
            }
            Sym::Table if ctx == RowKind::Node => {
                Diagnostic::error(format!("`{end}.{t}[relation]` in a node expression"), e.span)
                    .with_label(format!(
                        "`{end}` only exists in edge definitions and inside aggregations"
                    ))
            }
            Sym::Table => return Some(Dom::Rows(RowKind::Edge)),
            Sym::Weight(_) => Diagnostic::error(
                format!("`{end}.{t}[...]` reads a node table, but `{t}` is a weight"),
                e.span,
            )
            .with_label(format!("slice the weight itself: `{t}[{sel}]`")),
            _ => Diagnostic::error(format!("`{t}` is not a per-relation node table"), table.span)
                .with_label(format!(
                    "only a table declared `weight {t}[relation]: node[...]` is read as \
                     `{end}.{t}[relation]`"
                )),
        };
        self.diags.push(err);
        None
    }

    /// How the weight `name` is sliced, or an error when it is not a weight.
    fn weight_kind(&mut self, scope: &Scope<'a>, name: &Ident) -> Option<WeightSlicing> {
        match self.lookup(scope, name)? {
            Sym::Weight(kind) => Some(kind),
            Sym::Table => {
                self.diags.push(table_bare(name, name.span));
                None
            }
            _ => {
                let d = Diagnostic::error(format!("`{}` is not a weight", name.name), name.span)
                    .with_label(
                        "only per-relation and per-type weights can be sliced with `[...]`",
                    );
                self.diags.push(d);
                None
            }
        }
    }

    fn check_slice(
        &mut self,
        weight: &Ident,
        kind: WeightSlicing,
        sel: SliceSel,
        sel_span: Span,
        span: Span,
        ctx: RowKind,
    ) -> Option<Dom> {
        let w = &weight.name;
        let err = match (kind, sel, ctx) {
            (WeightSlicing::Relation, SliceSel::Relation, RowKind::Edge)
            | (WeightSlicing::NodeType, SliceSel::SrcType | SliceSel::DstType, RowKind::Edge)
            | (WeightSlicing::NodeType, SliceSel::NodeType, RowKind::Node) => {
                return Some(Dom::Rows(ctx))
            }
            (WeightSlicing::Shared, _, _) => Diagnostic::error(
                format!("`{w}` is a shared weight and cannot be sliced"),
                sel_span,
            )
            .with_label(format!(
                "declare it as `weight {w}[...]` to have one per relation or node type"
            )),
            (WeightSlicing::Relation, SliceSel::Relation, RowKind::Node) => {
                Diagnostic::error(format!("`{w}[relation]` in a node expression"), span).with_label(
                    "a node has no relation; use per-relation weights in edge definitions",
                )
            }
            (WeightSlicing::Relation, _, _) => {
                Diagnostic::error(format!("`{w}` is a per-relation weight"), sel_span)
                    .with_label(format!("slice it with `{w}[relation]`"))
            }
            (WeightSlicing::NodeType, SliceSel::NodeType, RowKind::Edge) => {
                Diagnostic::error(format!("`{w}[ntype]` in an edge expression"), span).with_label(
                    format!("an edge has no node type; use `{w}[src.ntype]` or `{w}[dst.ntype]`"),
                )
            }
            (WeightSlicing::NodeType, SliceSel::SrcType | SliceSel::DstType, RowKind::Node) => {
                Diagnostic::error(format!("`{w}[{sel}]` in a node expression"), span)
                    .with_label(format!("a node has no endpoints; use `{w}[ntype]`"))
            }
            (WeightSlicing::NodeType, SliceSel::Relation, _) => {
                Diagnostic::error(format!("`{w}` is a per-node-type weight"), sel_span).with_label(
                    format!("slice it with `{w}[ntype]`, `{w}[src.ntype]` or `{w}[dst.ntype]`"),
                )
            }
        };
        self.diags.push(err);
        None
    }

    /// The right side of `@`: a weight, sliced when it is per relation or per type.
    fn check_matmul_weight(&mut self, scope: &Scope<'a>, w: &Expr, ctx: RowKind) -> Option<Dom> {
        match &w.kind {
            ExprKind::Ref(ValueRef { name, field: None, .. }) => {
                let is_weight = matches!(scope.names.get(&name.name), Some((Sym::Weight(_), _)));
                if is_weight || !scope.names.contains_key(&name.name) {
                    return match self.weight_kind(scope, name)? {
                        WeightSlicing::Shared => Some(Dom::Shared),
                        kind => {
                            self.diags.push(unsliced(name, kind, ctx, w.span));
                            None
                        }
                    };
                }
            }
            ExprKind::Slice { .. } => return self.check_expr(scope, w, ctx),
            _ => {}
        }
        let d = Diagnostic::error("the right side of `@` must be a weight", w.span)
            .with_label("not a weight")
            .with_note(
                "`x @ W` multiplies each row of `x` by a weight declared with `weight W: [k, n];`",
            );
        self.diags.push(d);
        None
    }

    fn check_call(
        &mut self,
        scope: &Scope<'a>,
        func: &Ident,
        args: &[Arg],
        span: Span,
        ctx: RowKind,
    ) -> Option<Dom> {
        let Some(f) = Func::lookup(&func.name) else {
            let mut d = Diagnostic::error(format!("unknown function `{}`", func.name), func.span)
                .with_label("not a built-in function");
            if let Some(s) = suggest(&func.name, FUNCS.iter().map(|(n, _)| *n)) {
                d = d.with_note(format!("did you mean `{s}`?"));
            }
            self.diags.push(d);
            for a in args {
                if let Arg::Value(x) = a {
                    self.check_expr(scope, x, ctx);
                }
            }
            return None;
        };
        if let Some(d) = arity_error(f, func, args.len(), span) {
            self.diags.push(d);
            return None;
        }
        let wrong_place = match f {
            Func::Softmax if ctx == RowKind::Node => Some((
                "`softmax` in a node expression",
                "edge softmax normalises edge values; use it in an edge definition",
            )),
            Func::Aggregate(..) if ctx == RowKind::Edge => Some((
                "aggregation in an edge expression",
                "an aggregation turns edge values into node values; use it in a node definition",
            )),
            _ => None,
        };
        if let Some((msg, label)) = wrong_place {
            let d = Diagnostic::error(
                msg.replace("aggregation", &format!("aggregation `{}`", func.name)),
                func.span,
            );
            self.diags.push(d.with_label(label));
        }
        // Aggregations and softmax read edge expressions; everything else (and a misplaced
        // softmax, to avoid a second error about its argument) stays in `ctx`.
        let arg_ctx = match f {
            Func::Softmax | Func::Aggregate(..) if wrong_place.is_none() => RowKind::Edge,
            _ => ctx,
        };
        let doms = self.check_call_args(scope, f, func, args, arg_ctx);
        if wrong_place.is_some() {
            return None;
        }
        let doms = doms?;
        match f {
            Func::Softmax => Some(Dom::Rows(RowKind::Edge)),
            Func::Aggregate(..) => Some(Dom::Rows(RowKind::Node)),
            _ => {
                let mut dom = Dom::Shared;
                for (d, s) in doms {
                    dom = self.join(dom, d, s)?;
                }
                Some(dom)
            }
        }
    }

    /// Checks the arguments of a call of `f` (shape and number arguments where they belong,
    /// values in `arg_ctx`); every argument is checked, and `None` means one was wrong.
    fn check_call_args(
        &mut self,
        scope: &Scope<'a>,
        f: Func,
        func: &Ident,
        args: &[Arg],
        arg_ctx: RowKind,
    ) -> Option<Vec<(Dom, Span)>> {
        let mut ok = true;
        let mut doms = Vec::new();
        for (i, a) in args.iter().enumerate() {
            match (a, f, i) {
                (Arg::Shape(dims, _), Func::View, 1) => self.check_dims(scope, dims),
                (_, Func::View, 1) => {
                    let d = Diagnostic::error(
                        "the second argument of `view` must be a shape",
                        a.span(),
                    )
                    .with_label("expected a shape such as `[heads, d]`");
                    self.diags.push(d);
                    ok = false;
                }
                (Arg::Shape(_, s), _, _) => {
                    let d = Diagnostic::error(
                        "a shape `[...]` is only allowed as the second argument of `view`",
                        *s,
                    );
                    self.diags.push(d.with_label("expected a value"));
                    ok = false;
                }
                (Arg::Value(x), Func::Dropout, 1) => {
                    if !number(x).is_some_and(|p| (0.0..1.0).contains(&p)) {
                        let d = Diagnostic::error(
                            "the probability of `dropout` must be a number in [0, 1)",
                            x.span,
                        )
                        .with_label("expected a number such as `0.5`");
                        self.diags.push(d);
                        ok = false;
                    }
                }
                (Arg::Value(x), Func::LeakyRelu | Func::Elu, 1) => {
                    if !is_number(x) {
                        let what = if f == Func::Elu { "alpha" } else { "slope" };
                        let d = Diagnostic::error(
                            format!("the {what} of `{}` must be a number", func.name),
                            x.span,
                        )
                        .with_label("expected a number such as `0.2`");
                        self.diags.push(d);
                        ok = false;
                    }
                }
                (Arg::Value(x), _, _) => match self.check_expr(scope, x, arg_ctx) {
                    Some(d) => doms.push((d, x.span)),
                    None => ok = false,
                },
            }
        }
        ok.then_some(doms)
    }

    /// The domain of an element-wise combination.
    fn join(&mut self, a: Dom, b: Dom, span: Span) -> Option<Dom> {
        match (a, b) {
            (Dom::Shared, d) | (d, Dom::Shared) => Some(d),
            (Dom::Rows(x), Dom::Rows(y)) if x == y => Some(a),
            (Dom::Rows(x), Dom::Rows(y)) => {
                let d = Diagnostic::error(
                    format!(
                        "cannot combine {} value with {} value",
                        crate::check::a(x),
                        crate::check::a(y)
                    ),
                    span,
                );
                self.diags.push(d);
                None
            }
        }
    }
}

/// The error for a call of `f` with the wrong number of arguments, if it is one.
fn arity_error(f: Func, func: &Ident, n: usize, span: Span) -> Option<Diagnostic> {
    let (lo, hi) = f.arity();
    let too_many = matches!(hi, Some(hi) if n > hi);
    if n >= lo && !too_many {
        return None;
    }
    let want = match hi {
        Some(hi) if hi == lo => format!("{lo} argument{}", if lo == 1 { "" } else { "s" }),
        Some(hi) => format!("{lo} or {hi} arguments"),
        None => format!("at least {lo} arguments"),
    };
    let were = if n == 1 { "was" } else { "were" };
    let d = Diagnostic::error(format!("`{}` takes {want}, but {n} {were} given", func.name), span)
        .with_label("wrong number of arguments")
        .with_note(format!("usage: {}", f.signature(&func.name)));
    Some(d)
}

/// The error for a per-relation or per-type weight used without a slice.
fn unsliced(name: &Ident, kind: WeightSlicing, ctx: RowKind, span: Span) -> Diagnostic {
    let n = &name.name;
    let (what, fix) = match (kind, ctx) {
        (WeightSlicing::Relation, _) => ("per-relation", format!("`{n}[relation]`")),
        (_, RowKind::Node) => ("per-node-type", format!("`{n}[ntype]`")),
        (_, RowKind::Edge) => ("per-node-type", format!("`{n}[src.ntype]` or `{n}[dst.ntype]`")),
    };
    Diagnostic::error(format!("{what} weight `{n}` used without a slice"), span)
        .with_label(format!("use {fix}"))
}

/// Whether `e` is a number literal, possibly negated.
pub(crate) fn is_number(e: &Expr) -> bool {
    number(e).is_some()
}

/// The value of a number literal, possibly negated.
pub(crate) fn number(e: &Expr) -> Option<f64> {
    match &e.kind {
        ExprKind::Int(v) => Some(*v as f64),
        ExprKind::Float(v) => Some(*v),
        ExprKind::Neg(x) => number(x).map(|v| -v),
        _ => None,
    }
}
