//! Parameter-independent checking of every model: names (unknown, duplicate, used before their
//! definition), layers (unknown models, recursion, parameters, number and kind of inputs) and
//! statements. Expressions are checked in `check_expr.rs`. Shapes and dimensions depend on the
//! parameters and are checked by the lowering.

use crate::ast::*;
use crate::diag::{line_col, suggest, Diagnostic};
use std::collections::HashMap;

/// The domain of a checked expression.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Dom {
    /// A constant, parameter or shared weight: broadcasts to any domain.
    Shared,
    /// Per node or per edge.
    Rows(RowKind),
}

/// What a name in a model's scope stands for.
#[derive(Clone, Debug)]
pub(crate) enum Sym {
    /// An integer parameter.
    Param,
    /// An input or definition (`None`: the definition itself was in error).
    Value(Option<RowKind>),
    /// A declared weight.
    Weight(WeightSlicing),
    /// A learned per-(node, relation) table (`weight E[relation]: node[d];`), read only as
    /// `src.E[relation]` or `dst.E[relation]`. (An unsliced table is a node [`Sym::Value`].)
    Table,
    /// A layer and its outputs (`None`: the layer statement was in error).
    Layer(Option<Vec<(String, Option<RowKind>)>>),
}

/// A model's interface as seen by the layers that instantiate it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Signature {
    /// Inputs in declaration order.
    pub inputs: Vec<(String, RowKind)>,
    /// Outputs in order, with their row kinds where known.
    pub outputs: Vec<(String, Option<RowKind>)>,
}

enum State {
    Todo,
    InProgress,
    Done(Signature),
}

/// Checks every model of `file`, returning all errors found.
pub(crate) fn check_file(file: &File, text: &str) -> Vec<Diagnostic> {
    let mut fc =
        FileChecker { file, text, by_name: HashMap::new(), state: Vec::new(), diags: Vec::new() };
    for (i, model) in file.models.iter().enumerate() {
        fc.state.push(State::Todo);
        if let Some(&first) = fc.by_name.get(model.name.name.as_str()) {
            let first: &Model = &file.models[first];
            let d = fc.duplicate("model", &model.name, first.name.span);
            fc.diags.push(d);
        } else {
            fc.by_name.insert(&model.name.name, i);
        }
    }
    for i in 0..file.models.len() {
        fc.signature(i);
    }
    fc.diags
}

/// The checker's state for one file.
pub(crate) struct FileChecker<'a> {
    file: &'a File,
    pub(crate) text: &'a str,
    by_name: HashMap<&'a str, usize>,
    state: Vec<State>,
    pub(crate) diags: Vec<Diagnostic>,
}

/// The names of one model as its statements are walked in order.
pub(crate) struct Scope<'a> {
    /// The model being checked.
    pub model: &'a Model,
    /// Names defined so far, with the span of their definition.
    pub names: HashMap<String, (Sym, Span)>,
    /// Every name some statement of the model defines, to tell "used before its definition"
    /// from "unknown".
    pub later: HashMap<&'a str, Span>,
}

impl<'a> FileChecker<'a> {
    /// The signature of model `i`, checking it first if needed (`None` while it is being
    /// checked, i.e. on recursion).
    fn signature(&mut self, i: usize) -> Option<Signature> {
        match &self.state[i] {
            State::Done(sig) => return Some(sig.clone()),
            State::InProgress => return None,
            State::Todo => {}
        }
        self.state[i] = State::InProgress;
        let sig = self.check_model(&self.file.models[i]);
        self.state[i] = State::Done(sig.clone());
        Some(sig)
    }

    pub(crate) fn duplicate(&self, what: &str, name: &Ident, first: Span) -> Diagnostic {
        let (l, c) = line_col(self.text, first.start);
        Diagnostic::error(format!("{what} `{}` is defined twice", name.name), name.span)
            .with_label("redefined here")
            .with_note(format!("the first definition is at {l}:{c}"))
    }

    fn check_model(&mut self, model: &'a Model) -> Signature {
        let mut scope = Scope { model, names: HashMap::new(), later: HashMap::new() };
        for p in &model.params {
            self.define(&mut scope, &p.name, Sym::Param, "parameter");
        }
        for stmt in &model.stmts {
            if let Some(name) = stmt_name(stmt) {
                scope.later.entry(name.name.as_str()).or_insert(name.span);
            }
        }
        let mut sig = Signature::default();
        let mut has_output = false;
        for stmt in &model.stmts {
            match &stmt.kind {
                StmtKind::Input { name, rows, shape } => {
                    self.check_dims(&scope, shape);
                    sig.inputs.push((name.name.clone(), *rows));
                    self.define(&mut scope, name, Sym::Value(Some(*rows)), "name");
                }
                StmtKind::Weight { name, slicing, per_node, shape, init } => {
                    self.check_dims(&scope, shape);
                    if let Some(init) = init {
                        self.check_init(init);
                    }
                    let sym = match (per_node, slicing.0) {
                        (false, kind) => Sym::Weight(kind),
                        (true, WeightSlicing::Shared) => Sym::Value(Some(RowKind::Node)),
                        (true, WeightSlicing::Relation) => Sym::Table,
                        (true, WeightSlicing::NodeType) => {
                            let d = Diagnostic::error(
                                "a node table cannot be sliced by node type",
                                slicing.1,
                            )
                            .with_label("every node has one type")
                            .with_note(format!(
                                "`weight {}: node[...]` is already one row per node",
                                name.name
                            ));
                            self.diags.push(d);
                            Sym::Value(None)
                        }
                    };
                    self.define(&mut scope, name, sym, "name");
                }
                StmtKind::Def { rows, name, value } => {
                    let dom = self.check_expr(&scope, value, *rows);
                    let ok = matches!(dom, Some(Dom::Shared)) || dom == Some(Dom::Rows(*rows));
                    if dom.is_some() && !ok {
                        let d = Diagnostic::error(
                            format!("{} definition needs {} value", a(*rows), a(*rows)),
                            value.span,
                        );
                        self.diags.push(d);
                    }
                    self.define(&mut scope, name, Sym::Value(Some(*rows)), "name");
                }
                StmtKind::Layer { name, model: callee, args, inputs } => {
                    let outs = self.check_layer(&scope, callee, args, inputs);
                    self.define(&mut scope, name, Sym::Layer(outs), "name");
                }
                StmtKind::Output { values } => {
                    has_output = true;
                    for v in values {
                        let rows = self.value_ref(&scope, v);
                        let out_name = v.to_string();
                        if sig.outputs.iter().any(|(n, _)| *n == out_name) {
                            let d =
                                Diagnostic::error(format!("`{out_name}` is output twice"), v.span)
                                    .with_label("already an output");
                            self.diags.push(d);
                        } else {
                            sig.outputs.push((out_name, rows));
                        }
                    }
                }
            }
        }
        if !has_output {
            let d = Diagnostic::error(
                format!("model `{}` has no output", model.name.name),
                model.name.span,
            )
            .with_label("add an `output NAME;` statement");
            self.diags.push(d);
        }
        sig
    }

    fn define(&mut self, scope: &mut Scope<'a>, name: &Ident, sym: Sym, what: &str) {
        if let Some((_, first)) = scope.names.get(&name.name) {
            let d = self.duplicate(what, name, *first);
            self.diags.push(d);
            return;
        }
        scope.names.insert(name.name.clone(), (sym, name.span));
    }

    fn check_init(&mut self, init: &Ident) {
        const INITS: [&str; 3] = ["glorot", "zeros", "ones"];
        if !INITS.contains(&init.name.as_str()) {
            let mut d =
                Diagnostic::error(format!("unknown initialiser `{}`", init.name), init.span)
                    .with_label("expected `glorot`, `zeros` or `ones`");
            if let Some(s) = suggest(&init.name, INITS) {
                d = d.with_note(format!("did you mean `{s}`?"));
            }
            self.diags.push(d);
        }
    }

    /// Checks that every name in the dimension expressions is a parameter.
    pub(crate) fn check_dims(&mut self, scope: &Scope<'a>, dims: &[DimExpr]) {
        for d in dims {
            self.check_dim(scope, d);
        }
    }

    fn check_dim(&mut self, scope: &Scope<'a>, d: &DimExpr) {
        match &d.kind {
            DimKind::Int(_) => {}
            DimKind::Binary(_, a, b) => {
                self.check_dim(scope, a);
                self.check_dim(scope, b);
            }
            DimKind::Param(p) => match scope.names.get(&p.name) {
                Some((Sym::Param, _)) => {}
                Some(_) => {
                    let d = Diagnostic::error(format!("`{}` is not a parameter", p.name), p.span)
                        .with_label("dimensions use integers and parameters only");
                    self.diags.push(d);
                }
                None => {
                    let params = scope.model.params.iter().map(|p| p.name.name.as_str());
                    let mut d =
                        Diagnostic::error(format!("unknown parameter `{}`", p.name), p.span)
                            .with_label(format!("not a parameter of `{}`", scope.model.name.name));
                    if let Some(s) = suggest(&p.name, params) {
                        d = d.with_note(format!("did you mean `{s}`?"));
                    }
                    self.diags.push(d);
                }
            },
        }
    }

    /// Checks a layer statement; returns the callee's outputs when the callee is usable.
    fn check_layer(
        &mut self,
        scope: &Scope<'a>,
        callee: &Ident,
        args: &[ParamArg],
        inputs: &[ValueRef],
    ) -> Option<Vec<(String, Option<RowKind>)>> {
        for a in args {
            self.check_dim(scope, &a.value);
        }
        let input_rows: Vec<Option<RowKind>> =
            inputs.iter().map(|v| self.value_ref(scope, v)).collect();
        let Some(&idx) = self.by_name.get(callee.name.as_str()) else {
            let models = self.file.models.iter().map(|m| m.name.name.as_str());
            let mut d = Diagnostic::error(format!("unknown model `{}`", callee.name), callee.span)
                .with_label("no model of this name in the file");
            if let Some(s) = suggest(&callee.name, models) {
                d = d.with_note(format!("did you mean `{s}`?"));
            }
            self.diags.push(d);
            return None;
        };
        let me = &scope.model.name.name;
        let Some(sig) = self.signature(idx) else {
            let msg = if callee.name == *me {
                format!("model `{me}` instantiates itself")
            } else {
                format!("recursive layers: `{}` instantiates itself through `{me}`", callee.name)
            };
            let d = Diagnostic::error(msg, callee.span).with_label("recursion is not allowed");
            self.diags.push(d);
            return None;
        };
        let target = &self.file.models[idx];
        self.check_param_args(target, callee, args);
        if inputs.len() != sig.inputs.len() {
            let names: Vec<&str> = sig.inputs.iter().map(|(n, _)| n.as_str()).collect();
            let span =
                inputs.first().map_or(callee.span, |f| f.span.to(inputs[inputs.len() - 1].span));
            let d = Diagnostic::error(
                format!(
                    "`{}` takes {} input{} ({}), but {} {} given",
                    callee.name,
                    sig.inputs.len(),
                    if sig.inputs.len() == 1 { "" } else { "s" },
                    names.join(", "),
                    inputs.len(),
                    if inputs.len() == 1 { "was" } else { "were" }
                ),
                span,
            );
            self.diags.push(d.with_label("wrong number of inputs"));
        } else {
            for ((v, rows), (name, want)) in inputs.iter().zip(&input_rows).zip(&sig.inputs) {
                if let Some(rows) = rows {
                    if rows != want {
                        let d = Diagnostic::error(
                            format!(
                                "input `{name}` of `{}` is {} value, but `{v}` is {} value",
                                callee.name,
                                a(*want),
                                a(*rows)
                            ),
                            v.span,
                        )
                        .with_label(format!("expected {} value", a(*want)));
                        self.diags.push(d);
                    }
                }
            }
        }
        Some(sig.outputs)
    }

    fn check_param_args(&mut self, target: &Model, callee: &Ident, args: &[ParamArg]) {
        for (i, a) in args.iter().enumerate() {
            if args[..i].iter().any(|b| b.name.name == a.name.name) {
                let d = Diagnostic::error(
                    format!("parameter `{}` is given twice", a.name.name),
                    a.name.span,
                );
                self.diags.push(d.with_label("given again here"));
            } else if !target.params.iter().any(|p| p.name.name == a.name.name) {
                let names = target.params.iter().map(|p| p.name.name.as_str());
                let mut d = Diagnostic::error(
                    format!("model `{}` has no parameter `{}`", callee.name, a.name.name),
                    a.name.span,
                )
                .with_label("unknown parameter");
                if let Some(s) = suggest(&a.name.name, names) {
                    d = d.with_note(format!("did you mean `{s}`?"));
                }
                self.diags.push(d);
            }
        }
        for p in &target.params {
            if p.default.is_none() && !args.iter().any(|a| a.name.name == p.name.name) {
                let d = Diagnostic::error(
                    format!("missing parameter `{}` of model `{}`", p.name.name, callee.name),
                    callee.span,
                )
                .with_label(format!(
                    "`{}` has no default; give it as `{} = ...`",
                    p.name.name, p.name.name
                ));
                self.diags.push(d);
            }
        }
    }

    /// Resolves a reference that must name a node or edge value (layer inputs and outputs).
    pub(crate) fn value_ref(&mut self, scope: &Scope<'a>, v: &ValueRef) -> Option<RowKind> {
        let sym = self.lookup(scope, &v.name)?;
        let not_value = |what: &str| {
            Diagnostic::error(
                format!("`{}` is {what}, not a node or edge value", v.name.name),
                v.name.span,
            )
        };
        match (sym, &v.field) {
            (Sym::Layer(outs), Some(field)) => self.layer_field(&v.name, outs.as_deref()?, field),
            (Sym::Layer(outs), None) => self.layer_single(&v.name, outs.as_deref()?),
            (_, Some(field)) => {
                let d = Diagnostic::error(format!("`{}` is not a layer", v.name.name), v.name.span)
                    .with_label(format!("only a layer has outputs such as `.{}`", field.name));
                self.diags.push(d);
                None
            }
            (Sym::Value(rows), None) => rows,
            (Sym::Param, None) => {
                self.diags.push(not_value("a parameter"));
                None
            }
            (Sym::Weight(_), None) => {
                self.diags.push(not_value("a weight"));
                None
            }
            (Sym::Table, None) => {
                self.diags.push(table_bare(&v.name, v.span));
                None
            }
        }
    }

    /// Looks `name` up, reporting unknown names and names used before their definition.
    pub(crate) fn lookup(&mut self, scope: &Scope<'a>, name: &Ident) -> Option<Sym> {
        if let Some((sym, _)) = scope.names.get(&name.name) {
            return Some(sym.clone());
        }
        let d = if let Some(def) = scope.later.get(name.name.as_str()) {
            let (l, c) = line_col(self.text, def.start);
            Diagnostic::error(format!("`{}` is used before its definition", name.name), name.span)
                .with_label("not defined yet")
                .with_note(format!(
                    "`{}` is defined later, at {l}:{c}; a definition may only use earlier names",
                    name.name
                ))
        } else {
            let mut d = Diagnostic::error(format!("unknown name `{}`", name.name), name.span)
                .with_label(format!("not defined in `{}`", scope.model.name.name));
            if let Some(s) = suggest(&name.name, scope.names.keys().map(String::as_str)) {
                d = d.with_note(format!("did you mean `{s}`?"));
            }
            d
        };
        self.diags.push(d);
        None
    }

    /// The output `field` of layer `layer`.
    pub(crate) fn layer_field(
        &mut self,
        layer: &Ident,
        outs: &[(String, Option<RowKind>)],
        field: &Ident,
    ) -> Option<RowKind> {
        if let Some((_, rows)) = outs.iter().find(|(n, _)| *n == field.name) {
            return *rows;
        }
        let names: Vec<String> = outs.iter().map(|(n, _)| format!("`{n}`")).collect();
        let d = Diagnostic::error(
            format!("layer `{}` has no output `{}`", layer.name, field.name),
            field.span,
        )
        .with_label("unknown output")
        .with_note(format!("its outputs are {}", names.join(", ")));
        self.diags.push(d);
        None
    }

    /// The only output of layer `layer`, used by the layer's name.
    pub(crate) fn layer_single(
        &mut self,
        layer: &Ident,
        outs: &[(String, Option<RowKind>)],
    ) -> Option<RowKind> {
        if let [(_, rows)] = outs {
            return *rows;
        }
        let names: Vec<String> =
            outs.iter().map(|(n, _)| format!("`{}.{n}`", layer.name)).collect();
        let d = Diagnostic::error(
            format!("layer `{}` has {} outputs", layer.name, outs.len()),
            layer.span,
        )
        .with_label("name the output you mean")
        .with_note(format!("use one of {}", names.join(", ")));
        self.diags.push(d);
        None
    }
}

/// The name a statement defines, if any.
pub(crate) fn stmt_name(stmt: &Stmt) -> Option<&Ident> {
    match &stmt.kind {
        StmtKind::Input { name, .. }
        | StmtKind::Weight { name, .. }
        | StmtKind::Def { name, .. }
        | StmtKind::Layer { name, .. } => Some(name),
        StmtKind::Output { .. } => None,
    }
}

/// "a node" or "an edge".
pub(crate) fn a(rows: RowKind) -> &'static str {
    match rows {
        RowKind::Node => "a node",
        RowKind::Edge => "an edge",
    }
}

#[cfg(test)]
mod tests {
    use crate::diag::line_col;

    /// Checks names and domains of `src` and lists the errors as `line:col message`.
    fn check(src: &str, expect: &str) {
        let file = match crate::parse::parse_text(src) {
            Ok(f) => f,
            Err(d) => panic!("{}", d.render("t", src)),
        };
        let mut diags = super::check_file(&file, src);
        diags.sort_by_key(|d| d.span.start);
        let out: Vec<String> = diags
            .iter()
            .map(|d| {
                let (l, c) = line_col(src, d.span.start);
                format!("{l}:{c} {}", d.message)
            })
            .collect();
        assert_eq!(out.join("\n"), expect.trim(), "\n{}", out.join("\n"));
    }

    #[test]
    fn domains_of_a_valid_model() {
        check(
            r#"
model m(d = 4) {
    input h: node[d];
    input w: edge;
    weight W[relation]: [d, d];
    weight A[ntype]: [d];
    weight c: [d];
    edge e = (src.h @ W[relation] + dst.h * A[dst.ntype]) * w + c + d;
    node y = sum(e * A[src.ntype]) + h * A[ntype] - mean(softmax(w)) / 2;
    node k = 1;
    output y, k;
}
"#,
            "",
        );
    }

    #[test]
    fn models_may_be_used_before_they_are_defined_and_errors_are_all_reported() {
        check(
            r#"
model top() {
    input h: node[4];
    layer l = inner()(h);
    node y = l.a + l.b + q + softmax(h);
    edge z = l.a;
    output y, z;
}
model inner() { input x: node[4]; node a = x; output a; }
"#,
            r#"
5:22 layer `l` has no output `b`
5:26 unknown name `q`
5:30 `softmax` in a node expression
6:14 node value `l.a` used bare in an edge expression"#,
        );
    }
}

/// The error for a per-relation table used without `src.`/`dst.` and `[relation]`.
pub(crate) fn table_bare(name: &Ident, span: Span) -> Diagnostic {
    let n = &name.name;
    Diagnostic::error(format!("`{n}` is a per-relation node table"), span).with_label(format!(
        "read it at an edge's endpoint: `src.{n}[relation]` or `dst.{n}[relation]`"
    ))
}
