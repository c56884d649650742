//! The reference interpreter: evaluates an inter-operator IR [`Module`] on a graph in plain f64.
//!
//! This is the oracle every other back end is checked against, so it is written for clarity:
//! each instruction is evaluated in definition order into a whole [`Tensor`] (one row per element
//! of its domain), following the operator semantics documented in `pigeon_ir::inter` and
//! `docs/language.md`. Edge softmax and aggregation visit each destination's incoming edges
//! through one sorted grouping ([`InEdges`]), so every operator is linear in the graph's size.
//! A value is dropped after its last use.
//!
//! Errors: a missing or mis-shaped input is [`RuntimeError::Binding`], weights that do not fit
//! the module or graph are [`RuntimeError::Weights`], a graph whose ids exceed its sizes is
//! [`RuntimeError::InvalidGraph`], and an inconsistent module (an operand used before its
//! definition, a result that does not match its declared type) is [`RuntimeError::Internal`].

mod dense;
mod derivative;
mod elementwise;
mod layout;
mod linear;
pub mod math;
mod reduce;

pub use layout::{CompactTable, InEdges};

use crate::error::{Result, RuntimeError};
use crate::graph::HeteroGraph;
use crate::tensor::Tensor;
use crate::weights::WeightStore;
use pigeon_ir::{Domain, Endpoint, EntityId, Inst, Module, Op, Type, ValueId, WeightKind};
use std::borrow::Cow;
use std::cell::OnceCell;

/// Checks that the graph's arrays agree with its sizes: type offsets start at 0 and never
/// decrease, the edge arrays have one length, and every node, relation and type id is in range.
pub fn validate_graph(graph: &HeteroGraph) -> Result<()> {
    let bad = |m: String| Err(RuntimeError::InvalidGraph(m));
    let t = graph.num_node_types();
    let offsets = &graph.type_offsets;
    let empty = t == 0 && offsets.len() <= 1 && offsets.iter().all(|&o| o == 0);
    if !empty {
        if offsets.len() != t + 1 {
            return bad(format!(
                "{t} node types need {} type offsets, found {}",
                t + 1,
                offsets.len()
            ));
        }
        if offsets[0] != 0 || offsets.windows(2).any(|w| w[0] > w[1]) {
            return bad(format!("type offsets {offsets:?} must start at 0 and never decrease"));
        }
    }
    let (n, e, r) = (graph.num_nodes(), graph.num_edges(), graph.num_relations());
    if graph.dst.len() != e || graph.rel.len() != e {
        return bad(format!(
            "edge arrays differ in length: {} sources, {} destinations, {} relations",
            e,
            graph.dst.len(),
            graph.rel.len()
        ));
    }
    for i in 0..e {
        let (s, d, rel) = (graph.src[i] as usize, graph.dst[i] as usize, graph.rel[i] as usize);
        if s >= n || d >= n {
            return bad(format!("edge {i} ({s} -> {d}) names a node beyond the graph's {n} nodes"));
        }
        if rel >= r {
            return bad(format!("edge {i} has relation {rel}, but the graph has {r} relations"));
        }
    }
    for (i, rel) in graph.relations.iter().enumerate() {
        for ty in [rel.src_type, rel.dst_type].into_iter().flatten() {
            if ty as usize >= t {
                return bad(format!("relation {i} (`{}`) names node type {ty} of {t}", rel.name));
            }
        }
    }
    Ok(())
}

/// The graph and its layouts, built on first use.
pub(crate) struct Ctx<'g> {
    pub graph: &'g HeteroGraph,
    pub node_type: Vec<u32>,
    compact: [OnceCell<CompactTable>; 2],
    in_edges: OnceCell<InEdges>,
}

impl<'g> Ctx<'g> {
    fn new(graph: &'g HeteroGraph) -> Self {
        Self {
            graph,
            node_type: graph.node_type_ids(),
            compact: [OnceCell::new(), OnceCell::new()],
            in_edges: OnceCell::new(),
        }
    }

    /// The number of rows of domain `d` on this graph.
    pub fn rows(&self, d: Domain) -> usize {
        match d {
            Domain::Node => self.graph.num_nodes(),
            Domain::Edge => self.graph.num_edges(),
            Domain::Compact(ep) => self.compact(ep).len(),
            Domain::Shared => 1,
            Domain::Relation => self.graph.num_relations(),
            Domain::NodeType => self.graph.num_node_types(),
        }
    }

    /// The compact table of endpoint `ep`.
    pub fn compact(&self, ep: Endpoint) -> &CompactTable {
        let i = match ep {
            Endpoint::Src => 0,
            Endpoint::Dst => 1,
        };
        self.compact[i].get_or_init(|| CompactTable::build(self.graph, ep))
    }

    /// Incoming edges grouped by destination.
    pub fn in_edges(&self) -> &InEdges {
        self.in_edges.get_or_init(|| InEdges::build(self.graph))
    }
}

/// An operand: its values and its domain.
#[derive(Clone, Copy)]
pub(crate) struct Val<'a> {
    pub t: &'a Tensor,
    pub domain: Domain,
}

impl Val<'_> {
    /// The row of this operand read by row `i` of a result (a shared operand has one row).
    pub fn row(&self, i: usize) -> &[f64] {
        if self.domain == Domain::Shared {
            self.t.row(0)
        } else {
            self.t.row(i)
        }
    }
}

/// Evaluates `module` on `graph` with the given inputs (by name) and weights; returns the
/// module's outputs, in order.
pub fn interpret(
    module: &Module,
    graph: &HeteroGraph,
    inputs: &[(String, Tensor)],
    weights: &WeightStore,
) -> Result<Vec<(String, Tensor)>> {
    validate_graph(graph)?;
    let ctx = Ctx::new(graph);
    let last_use = last_uses(module);
    // Inputs and weights are borrowed, computed values owned.
    let mut values: Vec<Option<Cow<Tensor>>> = vec![None; module.insts.len()];
    let mut budget = MemoryBudget::new(inputs, weights);
    for (id, inst) in module.insts.iter() {
        budget.reserve(&ctx, id, inst)?;
        let out = {
            let val = |v: ValueId| operand(module, &values, v, id);
            eval(&ctx, module, inst, &val, inputs, weights).map_err(|e| in_value(e, id))?
        };
        let want = ctx.rows(inst.ty.domain);
        if out.rows != want
            || out.shape != inst.ty.shape
            || out.data.len() != want * out.shape.numel()
        {
            return Err(RuntimeError::Internal(format!(
                "{id}: computed {} rows of shape {}, but its type {} means {want} rows of {}",
                out.rows, out.shape, inst.ty, inst.ty.shape
            )));
        }
        // A value nobody uses (not even as an output) is not kept.
        if last_use.get(id.index()).is_some_and(|&l| l > id.index()) {
            values[id.index()] = Some(out);
        } else if let Cow::Owned(t) = &out {
            budget.release(t);
        }
        for v in inst.op.operands() {
            if last_use.get(v.index()) == Some(&id.index()) {
                if let Some(Some(Cow::Owned(t))) = values.get(v.index()) {
                    budget.release(t);
                }
                values[v.index()] = None;
            }
        }
    }
    module
        .outputs
        .iter()
        .map(|(name, v)| {
            let t = values.get(v.index()).and_then(|t| t.as_ref()).map(|t| t.as_ref().clone());
            let t = t.ok_or_else(|| {
                RuntimeError::Internal(format!("output `{name}` names undefined {v}"))
            })?;
            Ok((name.clone(), t))
        })
        .collect()
}

/// The bytes the interpreter holds: bound inputs and weights, plus the computed values alive,
/// checked against the machine's memory before each value is computed.
struct MemoryBudget {
    live: u128,
}

impl MemoryBudget {
    fn new(inputs: &[(String, Tensor)], weights: &WeightStore) -> Self {
        let bytes = |t: &Tensor| t.data.len() as u128 * 8;
        let live = inputs.iter().map(|(_, t)| bytes(t)).sum::<u128>()
            + weights.iter().map(|(_, e)| bytes(&e.tensor)).sum::<u128>();
        Self { live }
    }

    /// Accounts for the result of `inst` (computed values only), or refuses it.
    fn reserve(&mut self, ctx: &Ctx, id: ValueId, inst: &Inst) -> Result<()> {
        if matches!(inst.op, Op::Input { .. } | Op::Weight(_)) {
            return Ok(());
        }
        let rows = ctx.rows(inst.ty.domain);
        let bytes = crate::memory::f64_bytes(rows, inst.ty.shape.numel());
        let name = inst.name.as_deref().map(|n| format!(" (`{n}`)")).unwrap_or_default();
        let what = || {
            format!("value {id}{name} ({rows} {} rows of {} f64)", inst.ty.domain, inst.ty.shape)
        };
        crate::memory::check(what, bytes)?;
        let held = self.live;
        crate::memory::check(
            || {
                let held = crate::memory::human(held);
                format!("{} together with the {held} already held", what())
            },
            held + bytes,
        )?;
        self.live += bytes;
        Ok(())
    }

    /// Forgets a computed value that was dropped.
    fn release(&mut self, t: &Tensor) {
        self.live = self.live.saturating_sub(t.data.len() as u128 * 8);
    }
}

/// For each value, the index of the last instruction using it (`usize::MAX` for outputs).
fn last_uses(module: &Module) -> Vec<usize> {
    let mut last = vec![0usize; module.insts.len()];
    for (id, inst) in module.insts.iter() {
        for v in inst.op.operands() {
            if let Some(l) = last.get_mut(v.index()) {
                *l = (*l).max(id.index());
            }
        }
    }
    for (_, v) in &module.outputs {
        if let Some(l) = last.get_mut(v.index()) {
            *l = usize::MAX;
        }
    }
    last
}

/// Names the value being computed in internal errors.
fn in_value(e: RuntimeError, id: ValueId) -> RuntimeError {
    match e {
        RuntimeError::Internal(m) if !m.starts_with(&format!("{id}:")) => {
            RuntimeError::Internal(format!("{id}: {m}"))
        }
        e => e,
    }
}

fn operand<'a>(
    module: &Module,
    values: &'a [Option<Cow<Tensor>>],
    v: ValueId,
    user: ValueId,
) -> Result<Val<'a>> {
    let defined = v < user && module.insts.contains(v);
    match values.get(v.index()).and_then(|t| t.as_ref()) {
        Some(t) if defined => Ok(Val { t: t.as_ref(), domain: module.insts[v].ty.domain }),
        _ => Err(RuntimeError::Internal(format!("{user} uses {v} before its definition"))),
    }
}

/// Evaluates one instruction: inputs and weights are borrowed, everything else computed.
fn eval<'a, 'v>(
    ctx: &Ctx,
    module: &Module,
    inst: &Inst,
    val: &dyn Fn(ValueId) -> Result<Val<'v>>,
    inputs: &'a [(String, Tensor)],
    weights: &'a WeightStore,
) -> Result<Cow<'a, Tensor>> {
    match &inst.op {
        Op::Input { name, .. } => input(ctx, name, &inst.ty, inputs).map(Cow::Borrowed),
        Op::Weight(w) => weight(ctx, module, *w, &inst.ty, weights).map(Cow::Borrowed),
        op => compute(ctx, op, inst.ty.domain, val).map(Cow::Owned),
    }
}

/// Evaluates an operator other than `Input` and `Weight`.
fn compute<'v>(
    ctx: &Ctx,
    op: &Op,
    domain: Domain,
    val: &dyn Fn(ValueId) -> Result<Val<'v>>,
) -> Result<Tensor> {
    match op {
        Op::Input { .. } | Op::Weight(_) => {
            Err(RuntimeError::Internal("inputs and weights are not computed".into()))
        }
        Op::Const(c) => Ok(Tensor::scalar(*c)),
        Op::Gather { x, index } => linear::gather(ctx, val(*x)?, *index, domain),
        Op::Slice { w, by, domain } => linear::slice(ctx, val(*w)?, *by, *domain),
        Op::Linear { x, w, by } => linear::linear(ctx, val(*x)?, val(*w)?, *by),
        Op::Unary { op, x } => {
            let x = val(*x)?.t;
            let data = x.data.iter().map(|&v| math::unary(*op, v)).collect();
            Ok(Tensor { rows: x.rows, shape: x.shape.clone(), data })
        }
        Op::Binary { op, a, b } => elementwise::binary(ctx, *op, val(*a)?, val(*b)?),
        Op::Dot { a, b } => elementwise::dot(ctx, val(*a)?, val(*b)?),
        Op::View { x, shape } => {
            let x = val(*x)?.t;
            if x.shape.numel() != shape.numel() {
                return Err(RuntimeError::Internal(format!("cannot view {} as {shape}", x.shape)));
            }
            Ok(Tensor { rows: x.rows, shape: shape.clone(), data: x.data.clone() })
        }
        Op::Concat { xs } => {
            let parts = xs.iter().map(|&v| val(v)).collect::<Result<Vec<_>>>()?;
            elementwise::concat(ctx, &parts)
        }
        Op::EdgeSoftmax { x } => reduce::edge_softmax(ctx, val(*x)?),
        Op::Aggregate { op, group, x } => reduce::aggregate(ctx, *op, *group, val(*x)?),
        op => derivative::compute(ctx, op, val),
    }
}

/// The bound value of input `name`, checked against its declaration.
fn input<'a>(
    ctx: &Ctx,
    name: &str,
    ty: &Type,
    inputs: &'a [(String, Tensor)],
) -> Result<&'a Tensor> {
    let err = |message: String| RuntimeError::Binding { name: name.to_string(), message };
    let t = inputs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t)
        .ok_or_else(|| err(format!("no value given (declared {} {})", ty.domain, ty.shape)))?;
    let rows = ctx.rows(ty.domain);
    if t.rows != rows {
        return Err(err(format!(
            "declared per {}, so it needs {rows} rows on this graph, got {}",
            ty.domain, t.rows
        )));
    }
    if t.shape != ty.shape {
        return Err(err(format!(
            "declared with rows of shape {}, got rows of shape {}",
            ty.shape, t.shape
        )));
    }
    if t.data.len() != rows * ty.shape.numel() {
        return Err(err(format!(
            "holds {} values, expected {rows} x {}",
            t.data.len(),
            ty.shape.numel()
        )));
    }
    Ok(t)
}

/// The values of weight `w`, checked against its declaration and the graph.
fn weight<'a>(
    ctx: &Ctx,
    module: &Module,
    w: pigeon_ir::WeightId,
    ty: &Type,
    store: &'a WeightStore,
) -> Result<&'a Tensor> {
    let decl = module
        .weights
        .get(w)
        .ok_or_else(|| RuntimeError::Internal(format!("undeclared weight {w}")))?;
    if decl.kind.domain() != ty.domain || decl.shape != ty.shape {
        return Err(RuntimeError::Internal(format!(
            "weight {w} is declared {} {}, but its value is typed {ty}",
            decl.kind.domain(),
            decl.shape
        )));
    }
    let t = store
        .get(w)
        .ok_or_else(|| RuntimeError::Weights(format!("no values for weight `{}`", decl.name)))?;
    let rows = ctx.rows(ty.domain);
    let what = match decl.kind {
        WeightKind::Shared => "1 slice (shared)".to_string(),
        WeightKind::PerRelation => format!("{rows} slices (one per relation)"),
        WeightKind::PerNodeType => format!("{rows} slices (one per node type)"),
    };
    if t.rows != rows || t.shape != decl.shape || t.data.len() != rows * decl.shape.numel() {
        return Err(RuntimeError::Weights(format!(
            "weight `{}` needs {what} of shape {}, but holds {} slices of shape {} ({} values)",
            decl.name,
            decl.shape,
            t.rows,
            t.shape,
            t.data.len()
        )));
    }
    Ok(t)
}
