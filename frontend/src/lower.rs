//! Lowering of one checked model to a [`Module`]: parameters are evaluated, layers inlined
//! (weights `l1.W`, values `l1.z`), and every instruction typed by
//! [`pigeon_ir::infer::infer_type`]; dimension and shape errors become spanned diagnostics.
//! Expressions are lowered in `lower_expr.rs`.
//!
//! The lowering trusts the checker (`check.rs`) for names and domains, but never panics when
//! they are wrong: an unexpected name is reported as an internal error.

use crate::ast::*;
use crate::diag::Diagnostic;
use crate::dims;
use pigeon_ir::InputKind;
use pigeon_ir::{
    DType, Domain, Endpoint, Init, Inst, Module, Op, Shape, Type, ValueId, Weight, WeightId,
    WeightKind,
};
use std::collections::HashMap;

/// Layers nested deeper than this are rejected (recursion is caught earlier by the checker).
const MAX_DEPTH: usize = 64;

/// At most this many layer instances are inlined into one module: a model using a layer twice,
/// whose model uses a layer twice, ... doubles per level, and 64 levels would never finish.
const MAX_LAYERS: usize = 10_000;

/// What a name is bound to while a model is lowered.
#[derive(Clone, Debug)]
pub(crate) enum Bind {
    /// A parameter's value.
    Param(i64),
    /// A value (`None`: its definition failed).
    Value(Option<ValueId>),
    /// A weight; its `Op::Weight` instruction is created on first use.
    Weight {
        /// The declared weight (`None`: its shape failed).
        id: Option<WeightId>,
        /// How it is sliced.
        kind: WeightKind,
        /// The instruction holding it, once created.
        inst: Option<ValueId>,
    },
    /// A layer's outputs (`None`: the layer failed).
    Layer(Option<Vec<(String, Option<ValueId>)>>),
    /// A per-relation node table; its `Op::Input` (a compact value of the endpoint it is
    /// read at) is created on first use.
    Table {
        /// The qualified name (`l1.E`).
        name: String,
        /// The row shape (`None`: it failed).
        shape: Option<Shape>,
        /// The initialiser.
        init: Init,
        /// The endpoint it was first read at and its instruction.
        inst: Option<(Endpoint, ValueId)>,
    },
}

/// The names of the model being lowered.
pub(crate) struct Env<'a> {
    /// The model.
    pub model: &'a Model,
    /// Names bound so far.
    pub binds: HashMap<String, Bind>,
    /// Parameter values.
    pub params: HashMap<String, i64>,
    /// `""` for the top model, `"l1."` inside layer `l1`, `"l2.l1."` deeper.
    pub prefix: String,
}

/// The lowering's state: the module being built and the diagnostics found.
pub(crate) struct Lowerer<'a> {
    pub(crate) file: &'a File,
    pub(crate) module: Module,
    pub(crate) diags: Vec<Diagnostic>,
    /// "in layer ..." notes for the layers being inlined.
    notes: Vec<String>,
    /// Layer instances inlined so far (see [`MAX_LAYERS`]).
    layers: usize,
    /// Dropout masks made so far (they are named `dropout:0`, `dropout:1`, ...).
    pub(crate) dropouts: usize,
}

/// Lowers `file.models[idx]` with parameter overrides `params`.
pub(crate) fn lower(
    file: &File,
    idx: usize,
    params: &[(String, i64)],
) -> Result<Module, Vec<Diagnostic>> {
    let Some(model) = file.models.get(idx) else {
        return Err(vec![Diagnostic::error("internal error: no such model", Span::default())]);
    };
    let mut lw = Lowerer {
        file,
        module: Module { name: model.name.name.clone(), ..Module::default() },
        diags: Vec::new(),
        notes: Vec::new(),
        layers: 0,
        dropouts: 0,
    };
    let mut values = Vec::new();
    for (i, (name, _)) in params.iter().enumerate() {
        if params[..i].iter().any(|(n, _)| n == name) {
            lw.diags.push(
                Diagnostic::error(format!("parameter `{name}` is given twice"), model.name.span)
                    .with_label("given on the command line"),
            );
            continue;
        }
        if !model.params.iter().any(|p| p.name.name == *name) {
            lw.diags.push(
                Diagnostic::error(
                    format!("model `{}` has no parameter `{name}`", model.name.name),
                    model.name.span,
                )
                .with_label("given on the command line"),
            );
        }
    }
    for p in &model.params {
        let given = params.iter().rev().find(|(n, _)| *n == p.name.name).map(|(_, v)| *v);
        match given.or(p.default.map(|d| d.0)) {
            Some(v) => values.push((p.name.name.clone(), v)),
            None => lw.diags.push(
                Diagnostic::error(
                    format!(
                        "parameter `{}` of model `{}` has no default",
                        p.name.name, model.name.name
                    ),
                    p.span,
                )
                .with_label(format!("give it with `--param {}=VALUE`", p.name.name)),
            ),
        }
    }
    if !lw.diags.is_empty() {
        return Err(lw.diags);
    }
    lw.module.params = values.clone();
    let outs = lw.lower_model(model, values, None, String::new(), 0);
    for (name, v) in outs {
        if let Some(v) = v {
            lw.module.outputs.push((name, v));
        }
    }
    if lw.diags.is_empty() {
        Ok(lw.module)
    } else {
        Err(lw.diags)
    }
}

/// Bound inputs of an inlined layer: the caller's values and where they were written.
pub(crate) type LayerInputs = Vec<(Option<ValueId>, Span)>;

impl<'a> Lowerer<'a> {
    /// Reports `d` with the notes of the layers being inlined.
    pub(crate) fn report(&mut self, mut d: Diagnostic) {
        d.notes.extend(self.notes.iter().rev().cloned());
        self.diags.push(d);
    }

    /// Appends an instruction typed by `infer_type`, or reports why its operands do not fit.
    pub(crate) fn emit(&mut self, op: Op, span: Span, what: &str) -> Option<ValueId> {
        let insts = &self.module.insts;
        match pigeon_ir::infer::infer_type(&op, &|v| insts.get(v).map(|i| i.ty.clone())) {
            // Broadcasting multiplies extents: `[n] + [1, n] + [1, 1, n] + ...` would reach
            // shapes whose element count overflows, so inferred shapes get the declared limit.
            Ok(ty) if !dims::fits(&ty.shape) => {
                self.report(
                    Diagnostic::error(
                        format!(
                            "shape {} too large (more than {} elements per row)",
                            ty.shape,
                            dims::MAX_ELEMENTS
                        ),
                        span,
                    )
                    .with_label(format!("this {what} has shape {}", ty.shape)),
                );
                None
            }
            Ok(ty) => Some(self.module.insts.push(Inst { op, ty, name: None })),
            Err(msg) => {
                self.report(Diagnostic::error(msg, span).with_label(format!("in this {what}")));
                None
            }
        }
    }

    /// Appends an instruction of a known type (inputs and weights).
    pub(crate) fn emit_typed(&mut self, op: Op, ty: Type, name: String) -> ValueId {
        self.module.insts.push(Inst { op, ty, name: Some(name) })
    }

    /// Lowers the statements of `model`; `inputs` is `None` for the top model. Returns the
    /// model's outputs.
    fn lower_model(
        &mut self,
        model: &'a Model,
        params: Vec<(String, i64)>,
        inputs: Option<LayerInputs>,
        prefix: String,
        depth: usize,
    ) -> Vec<(String, Option<ValueId>)> {
        let mut env =
            Env { model, binds: HashMap::new(), params: params.iter().cloned().collect(), prefix };
        for (name, v) in params {
            env.binds.insert(name, Bind::Param(v));
        }
        let mut next_input = 0;
        let mut outputs = Vec::new();
        for stmt in &model.stmts {
            match &stmt.kind {
                StmtKind::Input { name, rows, shape } => {
                    let shape = self.shape(shape, &env.params);
                    let given = inputs.as_ref().map(|ins| ins.get(next_input).copied());
                    next_input += 1;
                    let v = self.lower_input(&env, name, *rows, shape, given);
                    env.binds.insert(name.name.clone(), Bind::Value(v));
                }
                StmtKind::Weight { name, slicing, per_node, shape, init } => {
                    let init = init_of(init.as_ref());
                    let b = if *per_node {
                        self.lower_table(&env, name, slicing.0, shape, init)
                    } else {
                        self.lower_weight(&env, name, slicing.0, shape, init)
                    };
                    env.binds.insert(name.name.clone(), b);
                }
                StmtKind::Def { rows, name, value } => {
                    let dom = domain(*rows);
                    let v = self
                        .lower_expr(&mut env, value, dom)
                        .and_then(|v| self.broadcast_to(v, dom, value.span));
                    if let Some(v) = v {
                        let inst = &mut self.module.insts[v];
                        if inst.name.is_none() {
                            inst.name = Some(format!("{}{}", env.prefix, name.name));
                        }
                    }
                    env.binds.insert(name.name.clone(), Bind::Value(v));
                }
                StmtKind::Layer { name, model: callee, args, inputs: ins } => {
                    let outs = self.lower_layer(&mut env, name, callee, args, ins, depth);
                    env.binds.insert(name.name.clone(), Bind::Layer(outs));
                }
                StmtKind::Output { values } => {
                    for r in values {
                        let v = self.value_ref(&mut env, r);
                        outputs.push((r.to_string(), v));
                    }
                }
            }
        }
        outputs
    }

    /// Evaluates a declared shape, reporting bad dimensions.
    pub(crate) fn shape(&mut self, ds: &[DimExpr], params: &HashMap<String, i64>) -> Option<Shape> {
        match dims::eval_shape(ds, params) {
            Ok(s) => Some(s),
            Err(errs) => {
                for e in errs {
                    self.report(e);
                }
                None
            }
        }
    }

    fn lower_input(
        &mut self,
        env: &Env<'a>,
        name: &Ident,
        rows: RowKind,
        shape: Option<Shape>,
        given: Option<Option<(Option<ValueId>, Span)>>,
    ) -> Option<ValueId> {
        let ty = Type { domain: domain(rows), shape: shape?, dtype: DType::F32 };
        let Some(given) = given else {
            let full = format!("{}{}", env.prefix, name.name);
            let op = Op::Input { name: full.clone(), kind: InputKind::Data };
            return Some(self.emit_typed(op, ty, full));
        };
        let Some((v, span)) = given else {
            self.report(Diagnostic::error("internal error: layer input missing", name.span));
            return None;
        };
        let v = v?;
        let got = &self.module.insts[v].ty;
        if got.domain != ty.domain || got.shape != ty.shape {
            let d = Diagnostic::error(
                format!(
                    "input `{}` of `{}` is declared {rows}{}, but the value given is {} {}",
                    name.name, env.model.name.name, ty.shape, got.domain, got.shape
                ),
                span,
            )
            .with_label(format!("expected {rows}{}", ty.shape));
            self.report(d);
            return None;
        }
        Some(v)
    }

    fn lower_weight(
        &mut self,
        env: &Env<'a>,
        name: &Ident,
        slicing: WeightSlicing,
        shape: &[DimExpr],
        init: Init,
    ) -> Bind {
        let kind = match slicing {
            WeightSlicing::Shared => WeightKind::Shared,
            WeightSlicing::Relation => WeightKind::PerRelation,
            WeightSlicing::NodeType => WeightKind::PerNodeType,
        };
        let id = self.shape(shape, &env.params).map(|shape| {
            let full = format!("{}{}", env.prefix, name.name);
            self.module.weights.push(Weight { name: full, kind, shape, init })
        });
        Bind::Weight { id, kind, inst: None }
    }

    /// A learned node table: an unsliced one is a node input made now, a per-relation one
    /// waits for its first read (which says its endpoint).
    fn lower_table(
        &mut self,
        env: &Env<'a>,
        name: &Ident,
        slicing: WeightSlicing,
        shape: &[DimExpr],
        init: Init,
    ) -> Bind {
        let shape = self.shape(shape, &env.params);
        let full = format!("{}{}", env.prefix, name.name);
        match slicing {
            WeightSlicing::Shared => Bind::Value(shape.map(|shape| {
                let ty = Type { domain: Domain::Node, shape, dtype: DType::F32 };
                self.emit_typed(
                    Op::Input { name: full.clone(), kind: InputKind::Table(init) },
                    ty,
                    full,
                )
            })),
            WeightSlicing::Relation => Bind::Table { name: full, shape, init, inst: None },
            // Rejected by the checker.
            WeightSlicing::NodeType => Bind::Value(None),
        }
    }

    /// Inlines a layer: evaluates its parameters in the caller, binds its inputs, lowers the
    /// callee under the prefix `name.`.
    fn lower_layer(
        &mut self,
        env: &mut Env<'a>,
        name: &Ident,
        callee: &Ident,
        args: &[ParamArg],
        ins: &[ValueRef],
        depth: usize,
    ) -> Option<Vec<(String, Option<ValueId>)>> {
        let file: &'a File = self.file;
        let Some(target) = file.models.iter().find(|m| m.name.name == callee.name) else {
            self.report(Diagnostic::error(
                format!("internal error: unknown model `{}`", callee.name),
                callee.span,
            ));
            return None;
        };
        if depth >= MAX_DEPTH {
            self.report(Diagnostic::error(
                format!("layers nested more than {MAX_DEPTH} deep"),
                callee.span,
            ));
            return None;
        }
        self.layers += 1;
        if self.layers > MAX_LAYERS {
            // Reported once: every later layer of the same blow-up would repeat it.
            if self.layers == MAX_LAYERS + 1 {
                self.report(
                    Diagnostic::error(
                        format!("more than {MAX_LAYERS} layer instances in one model"),
                        callee.span,
                    )
                    .with_note("each layer statement inlines its model; layers of models that use several layers multiply"),
                );
            }
            return None;
        }
        let mut values = Vec::new();
        for p in &target.params {
            let v = match args.iter().find(|a| a.name.name == p.name.name) {
                Some(a) => match dims::eval(&a.value, &env.params) {
                    Ok(v) => v,
                    Err(e) => {
                        self.report(e);
                        return None;
                    }
                },
                None => p.default?.0,
            };
            values.push((p.name.name.clone(), v));
        }
        let inputs: LayerInputs = ins.iter().map(|r| (self.value_ref(env, r), r.span)).collect();
        let shown: Vec<String> = values.iter().map(|(n, v)| format!("{n} = {v}")).collect();
        self.notes.push(format!(
            "in layer `{}` of `{}`: model `{}` with {}",
            name.name,
            env.model.name.name,
            target.name.name,
            if shown.is_empty() { "no parameters".to_string() } else { shown.join(", ") }
        ));
        let prefix = format!("{}{}.", env.prefix, name.name);
        let outs = self.lower_model(target, values, Some(inputs), prefix, depth + 1);
        self.notes.pop();
        Some(outs)
    }

    /// Converts a shared value to `dom` rows (`Op::Slice` by `same`); other values pass.
    pub(crate) fn broadcast_to(&mut self, v: ValueId, dom: Domain, span: Span) -> Option<ValueId> {
        if self.module.insts[v].ty.domain == Domain::Shared && dom != Domain::Shared {
            return self.emit(
                Op::Slice { w: v, by: pigeon_ir::Select::Same, domain: dom },
                span,
                "expression",
            );
        }
        Some(v)
    }
}

/// The IR domain of node or edge rows.
pub(crate) fn domain(rows: RowKind) -> Domain {
    match rows {
        RowKind::Node => Domain::Node,
        RowKind::Edge => Domain::Edge,
    }
}

#[cfg(test)]
mod tests {
    use crate::SourceFile;

    /// Lowers `src` (its last model, with `params`) and prints the module, or the diagnostics.
    fn check(src: &str, params: &[(&str, i64)], expect: &str) {
        let file = SourceFile { name: "t.rgnn".into(), text: src.into() };
        let params: Vec<(String, i64)> = params.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let out = match crate::compile(&file, None, &params) {
            Ok(m) => dump(&m),
            Err(d) => d.render("t.rgnn", src),
        };
        assert_eq!(out.trim(), expect.trim(), "\n{out}");
    }

    fn dump(m: &pigeon_ir::Module) -> String {
        let mut out = format!("{} {:?}\n", m.name, m.params);
        for (id, w) in m.weights.iter() {
            out += &format!("{id} {} {:?} {} {}\n", w.name, w.kind, w.shape, w.init.name());
        }
        for (id, i) in m.insts.iter() {
            out += &format!("{id} = {:?} : {} {}\n", i.op, i.ty, i.name.as_deref().unwrap_or("-"));
        }
        for (n, v) in &m.outputs {
            out += &format!("output {n} = {v}\n");
        }
        out
    }

    const RGCN: &str = r#"
model rgcn(in_dim = 4, out_dim = 2) {
    input  h: node[in_dim];
    weight W[relation]: [in_dim, out_dim];
    weight root: [in_dim, out_dim];
    weight bias: [out_dim] = zeros;
    edge m   = src.h @ W[relation];
    node out = mean_per_relation(m) + h @ root + bias;
    output out;
}
"#;

    #[test]
    fn rgcn_lowers_to_the_documented_ops() {
        check(
            RGCN,
            &[("out_dim", 3)],
            r#"
rgcn [("in_dim", 4), ("out_dim", 3)]
w0 W PerRelation [4, 3] glorot
w1 root Shared [4, 3] glorot
w2 bias Shared [3] zeros
v0 = Input { name: "h", kind: Data } : node [4] f32 h
v1 = Gather { x: v0, index: Node(Src) } : edge [4] f32 -
v2 = Weight(w0) : relation [4, 3] f32 W
v3 = Linear { x: v1, w: v2, by: Relation } : edge [3] f32 m
v4 = Aggregate { op: Mean, group: PerRelation, x: v3 } : node [3] f32 -
v5 = Weight(w1) : shared [4, 3] f32 root
v6 = Linear { x: v0, w: v5, by: Same } : node [3] f32 -
v7 = Binary { op: Add, a: v4, b: v6 } : node [3] f32 -
v8 = Weight(w2) : shared [3] f32 bias
v9 = Binary { op: Add, a: v7, b: v8 } : node [3] f32 out
output out = v9
"#,
        );
    }

    #[test]
    fn layers_are_inlined_with_prefixes() {
        let src = format!(
            "{RGCN}\nmodel two(hidden = 6) {{\n    input x: node[4];\n    layer l1 = rgcn(out_dim = hidden)(x);\n    node h1 = relu(l1);\n    layer l2 = rgcn(in_dim = hidden)(h1);\n    output l2;\n}}\n"
        );
        check(
            &src,
            &[],
            r#"
two [("hidden", 6)]
w0 l1.W PerRelation [4, 6] glorot
w1 l1.root Shared [4, 6] glorot
w2 l1.bias Shared [6] zeros
w3 l2.W PerRelation [6, 2] glorot
w4 l2.root Shared [6, 2] glorot
w5 l2.bias Shared [2] zeros
v0 = Input { name: "x", kind: Data } : node [4] f32 x
v1 = Gather { x: v0, index: Node(Src) } : edge [4] f32 -
v2 = Weight(w0) : relation [4, 6] f32 l1.W
v3 = Linear { x: v1, w: v2, by: Relation } : edge [6] f32 l1.m
v4 = Aggregate { op: Mean, group: PerRelation, x: v3 } : node [6] f32 -
v5 = Weight(w1) : shared [4, 6] f32 l1.root
v6 = Linear { x: v0, w: v5, by: Same } : node [6] f32 -
v7 = Binary { op: Add, a: v4, b: v6 } : node [6] f32 -
v8 = Weight(w2) : shared [6] f32 l1.bias
v9 = Binary { op: Add, a: v7, b: v8 } : node [6] f32 l1.out
v10 = Unary { op: Relu, x: v9 } : node [6] f32 h1
v11 = Gather { x: v10, index: Node(Src) } : edge [6] f32 -
v12 = Weight(w3) : relation [6, 2] f32 l2.W
v13 = Linear { x: v11, w: v12, by: Relation } : edge [2] f32 l2.m
v14 = Aggregate { op: Mean, group: PerRelation, x: v13 } : node [2] f32 -
v15 = Weight(w4) : shared [6, 2] f32 l2.root
v16 = Linear { x: v10, w: v15, by: Same } : node [2] f32 -
v17 = Binary { op: Add, a: v14, b: v16 } : node [2] f32 -
v18 = Weight(w5) : shared [2] f32 l2.bias
v19 = Binary { op: Add, a: v17, b: v18 } : node [2] f32 l2.out
output l2 = v19
"#,
        );
    }

    #[test]
    fn attention_constants_views_and_shared_edge_values() {
        check(
            r#"
model gat(d = 4, heads = 2) {
    input h: node[d];
    input w: edge;
    weight K[ntype]: [d, heads, d / heads];
    weight a: [heads, d / heads] = ones;
    edge k = view(src.h, [heads, d / heads]);
    edge s = leaky_relu(dot(k, a), 0.2) / sqrt(heads) * w;
    edge one = 1;
    edge alpha = softmax(-s);
    node out = view(sum(alpha * k) + maximum(h @ K[ntype], 0), [d]);
    output out, one;
}
"#,
            &[],
            r#"
gat [("d", 4), ("heads", 2)]
w0 K PerNodeType [4, 2, 2] glorot
w1 a Shared [2, 2] ones
v0 = Input { name: "h", kind: Data } : node [4] f32 h
v1 = Input { name: "w", kind: Data } : edge [] f32 w
v2 = Gather { x: v0, index: Node(Src) } : edge [4] f32 -
v3 = View { x: v2, shape: Shape([2, 2]) } : edge [2, 2] f32 k
v4 = Weight(w1) : shared [2, 2] f32 a
v5 = Dot { a: v3, b: v4 } : edge [2] f32 -
v6 = Unary { op: LeakyRelu(0.2), x: v5 } : edge [2] f32 -
v7 = Const(2.0) : shared [] f32 -
v8 = Unary { op: Sqrt, x: v7 } : shared [] f32 -
v9 = Binary { op: Div, a: v6, b: v8 } : edge [2] f32 -
v10 = Binary { op: Mul, a: v9, b: v1 } : edge [2] f32 s
v11 = Const(1.0) : shared [] f32 -
v12 = Slice { w: v11, by: Same, domain: Edge } : edge [] f32 one
v13 = Unary { op: Neg, x: v10 } : edge [2] f32 -
v14 = EdgeSoftmax { x: v13 } : edge [2] f32 alpha
v15 = Binary { op: Mul, a: v14, b: v3 } : edge [2, 2] f32 -
v16 = Aggregate { op: Sum, group: All, x: v15 } : node [2, 2] f32 -
v17 = Weight(w0) : ntype [4, 2, 2] f32 K
v18 = Linear { x: v0, w: v17, by: NodeType } : node [2, 2] f32 -
v19 = Const(0.0) : shared [] f32 -
v20 = Binary { op: Max, a: v18, b: v19 } : node [2, 2] f32 -
v21 = Binary { op: Add, a: v16, b: v20 } : node [2, 2] f32 -
v22 = View { x: v21, shape: Shape([4]) } : node [4] f32 out
output out = v22
output one = v12
"#,
        );
    }

    /// Each level uses the one below twice: 2^40 instances, refused quickly instead of hanging.
    #[test]
    fn exponential_layer_blowup_is_refused() {
        let mut src =
            String::from("model m0(d = 2) { input h: node[d]; node y = relu(h); output y; }\n");
        for i in 1..40 {
            src += &format!(
                "model m{i}(d = 2) {{ input h: node[d]; layer a = m{j}(d = d)(h); layer b = m{j}(d = d)(a); output b; }}\n",
                j = i - 1
            );
        }
        let file = SourceFile { name: "t.rgnn".into(), text: src };
        let start = std::time::Instant::now();
        let errs =
            crate::compile(&file, None, &[]).map(|m| m.insts.len()).map_err(|d| d.to_string());
        assert!(
            matches!(&errs, Err(m) if m.contains("more than 10000 layer instances in one model")),
            "{errs:?}"
        );
        assert_eq!(errs.map_err(|m| m.matches("layer instances").count()), Err(1));
        assert!(start.elapsed().as_secs() < 30, "took {:?}", start.elapsed());
        // m12 inlines 2 + 4 + ... + 2^12 = 8190 layer instances: fine.
        let ok = crate::compile(&file, Some("m12"), &[]).map(|m| m.weights.len());
        assert!(ok.is_ok(), "{ok:?}");
        assert!(crate::check(&SourceFile {
            name: "t".into(),
            text: file.text[..file.text.find("model m13").unwrap_or(0)].into()
        })
        .is_ok());
    }

    /// Broadcasting `[n] + [1, n] + [1, 1, n] + [1, 1, 1, n]` with n = 2^16 gives 2^64 elements
    /// per row, which overflowed `Shape::numel`; inferred shapes now have the declared limit.
    #[test]
    fn broadcasting_to_a_huge_shape_is_an_error() {
        let src = "model m(n = 65536) {\n    input a: node[n];\n    weight b: [1, n];\n    weight c: [1, 1, n];\n    weight d: [1, 1, 1, n];\n    node y = a + b + c + d;\n    output y;\n}\n";
        let file = SourceFile { name: "t.rgnn".into(), text: src.into() };
        let msg = crate::compile(&file, None, &[]).map(|_| ()).map_err(|d| d.to_string());
        assert!(
            matches!(&msg, Err(m) if m.contains("shape [65536, 65536] too large (more than 2147483648 elements per row)")),
            "{msg:?}"
        );
        // `check` reports it too (it lowers every model with defaults).
        assert!(crate::check(&file).is_err());
        // Exactly at the limit is fine: [2^15] + [1, 2^16] gives [2^15, 2^16] = 2^31 elements.
        let fine = "model m(n = 32768) { input a: node[n]; weight b: [1, 2 * n]; node y = a + b; output y; }";
        let fine = SourceFile { name: "t.rgnn".into(), text: fine.into() };
        let out =
            crate::compile(&fine, None, &[]).map(|m| m.insts.len()).map_err(|d| d.to_string());
        assert!(out.is_ok(), "{out:?}");
    }

    #[test]
    fn a_parameter_given_twice_is_an_error() {
        check(
            RGCN,
            &[("in_dim", 4), ("in_dim", 5)],
            "error: parameter `in_dim` is given twice\n  --> t.rgnn:2:7\n   |\n 2 | model rgcn(in_dim = 4, out_dim = 2) {\n   |       ^^^^ given on the command line",
        );
    }

    #[test]
    fn shape_and_parameter_errors() {
        check(
            RGCN.replace("h @ root", "h @ W[relation]").as_str(),
            &[],
            &format!("error: `W[relation]` in a node expression\n  --> t.rgnn:8:43\n   |\n 8 |     node out = mean_per_relation(m) + h @ W[relation] + bias;\n   | {}^^^^^^^^^^^ a node has no relation; use per-relation weights in edge definitions", " ".repeat(42)),
        );
        check(
            RGCN,
            &[("out_dim", 0), ("outdim", 1)],
            "error: model `rgcn` has no parameter `outdim`\n  --> t.rgnn:2:7\n   |\n 2 | model rgcn(in_dim = 4, out_dim = 2) {\n   |       ^^^^ given on the command line",
        );
    }
}

/// The initialiser a declaration names (the checker rejected unknown names); Glorot by default.
fn init_of(init: Option<&Ident>) -> Init {
    match init.map(|i| i.name.as_str()) {
        Some("zeros") => Init::Zeros,
        Some("ones") => Init::Ones,
        _ => Init::Glorot,
    }
}
