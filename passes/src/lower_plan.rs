//! Lowering from the inter-operator IR and its fusion groups to a kernel plan (the
//! intra-operator IR, `pigeon_ir::plan`): one kernel per group, in the groups' order.
//!
//! Implements the "GEMM and traversal templates" of PIGEON / Hector (arXiv 2301.06284): a GEMM
//! group becomes a [`Gemm`] (segment from `linear ... by`, A gathered through the index of an
//! inlined `gather`, contraction form from `shape::linear`, the epilogue chain, and
//! `AddIntoDst` when the chain ends in a sum over edges); a traversal group becomes a
//! [`Traversal`](pigeon_ir::plan::Traversal) whose body maps the group's instructions 1:1 onto register statements
//! (edge-level statements first, then node-level ones), loading operands from memory through a
//! [`RowIndex`] and storing the values other groups read.
//!
//! Buffers: inputs and weights become `Input`/`Weight` buffers; a value computed by a group
//! gets a `Temp` buffer when another group reads it, and an `Output` buffer when it is an
//! output (an output that is an input, a weight, or already another output gets a copy kernel,
//! a `Rows` traversal). Row spaces follow the domains (node -> `Nodes`, edge -> `Edges`,
//! compact -> `Compact`, relation -> `Relations`, ntype -> `NodeTypes`, shared -> `One`).
//! Layouts: `InCsr` for node-parallel traversals, `EdgesByRelation` for GEMMs over edges
//! segmented by relation, `Compact(ep)` for compact rows and `EdgeToCompact` reads,
//! `NodesByType` for selections by node type.
//!
//! A buffer written with `AddIntoDst` is read as zero before its writing kernel: executors
//! clear it (it is written by exactly one kernel).
//!
//! # Example
//!
//! R-GCN (see `fuse.rs` for the module), fused:
//!
//! ```text
//! buffer b0 "h": nodes [64] f32 input "h"
//! buffer b1 "rel_norm": edges [] f32 input "rel_norm"
//! buffer b2 "W": relations [64, 64] f32 weight w0
//! buffer b3 "v6": nodes [64] f32 temp
//! buffer b4 "root": one [64, 64] f32 weight w1
//! buffer b5 "bias": one [64] f32 weight w2
//! buffer b6 "out": nodes [64] f32 output "out"
//!
//! layouts edges_by_relation
//!
//! k0 = gemm rows edges segment relation a b0 gather src b b2 plain(k=64, n=64) epilogue [scale b1 this] c b3 add_into_dst
//! k1 = gemm rows nodes segment same a b0 gather this b b4 plain(k=64, n=64) epilogue [add b3 this, add b5 this] c b6 write
//!
//! output "out" = b6
//! ```

mod body;

use crate::fuse::{resolve, row_space, Fusion, Template};
use crate::PassError;
use pigeon_ir::inter::{BinaryOp, Module, Op, Select, ValueId};
use pigeon_ir::plan::{
    Buffer, BufferId, BufferKind, Epilogue, Gemm, Kernel, Layout, Plan, RowIndex, RowSpace,
    Schedule, StoreMode, WeightGrad,
};
use pigeon_ir::shape::LinearForm;
use pigeon_ir::{EntityId, GraphStats};
use std::collections::{BTreeSet, HashMap};

pub(crate) fn internal(message: String) -> PassError {
    PassError::Internal { pass: "lower-plan", message }
}

/// What kernels of one plan share while they are lowered.
pub(crate) struct Cx<'a> {
    pub module: &'a Module,
    pub fusion: &'a Fusion,
    /// Values with a buffer or a group (not inlined).
    pub materialised: Vec<bool>,
    /// The buffer of each value that has one.
    pub buf_of: HashMap<ValueId, BufferId>,
}

impl Cx<'_> {
    /// The buffer and row index through which rows of `p`'s domain read `p`.
    pub fn read(&self, p: ValueId) -> Result<(BufferId, RowIndex), PassError> {
        let (src, index) = resolve(self.module, &self.materialised, p)
            .ok_or_else(|| internal(format!("{p} cannot be read through one row index")))?;
        let buf = self
            .buf_of
            .get(&src)
            .copied()
            .ok_or_else(|| internal(format!("{p} is read from {src}, which has no buffer")))?;
        Ok((buf, index))
    }
}

/// Lowers `module`, partitioned by `fusion`, to a kernel plan. `stats` describe the graph the
/// plan is for (the lowering itself does not depend on them; schedules and buffer reuse do).
pub fn lower_to_plan(
    module: &Module,
    fusion: &Fusion,
    stats: &GraphStats,
) -> Result<Plan, PassError> {
    let _ = stats;
    let materialised: Vec<bool> = module.insts.keys().map(|v| !fusion.is_inlined(v)).collect();
    let mut cx = Cx { module, fusion, materialised, buf_of: HashMap::new() };
    let mut plan = Plan {
        name: module.name.clone(),
        params: module.params.clone(),
        weights: module.weights.clone(),
        ..Plan::default()
    };
    let needed = needed_buffers(&cx)?;
    create_buffers(&mut cx, &mut plan, &needed);
    for (i, group) in fusion.groups.iter().enumerate() {
        let kernel = match group.template {
            Template::Gemm => Kernel::Gemm(lower_gemm(&cx, &group.members)?),
            Template::WeightGrad => Kernel::WeightGrad(lower_weight_grad(&cx, &group.members)?),
            Template::Traversal(schedule) => {
                Kernel::Traversal(body::lower_traversal(&cx, i, schedule, &group.members, &needed)?)
            }
        };
        plan.kernels.push(kernel);
    }
    add_outputs(&cx, &mut plan)?;
    plan.layouts = layouts(&plan);
    Ok(plan)
}

/// Which values need a buffer: inputs and weights that are read, and group values read by
/// another group, written by a GEMM, or output.
fn needed_buffers(cx: &Cx) -> Result<Vec<bool>, PassError> {
    let module = cx.module;
    let mut needed = vec![false; module.insts.len()];
    for (_, v) in &module.outputs {
        if let Some(n) = needed.get_mut(v.index()) {
            *n = true;
        }
    }
    for (g, group) in cx.fusion.groups.iter().enumerate() {
        if matches!(group.template, Template::Gemm | Template::WeightGrad) {
            if let Some(last) = group.members.last() {
                needed[last.index()] = true;
            }
        }
        for &m in &group.members {
            if crate::fuse::scatter_store(&module.insts[m].op).is_some() {
                needed[m.index()] = true; // stored as it is computed
            }
            let op = &module.insts[m].op;
            for p in op.operands() {
                let own = cx.fusion.group(p).is_some_and(|h| h.index() == g);
                if cx.materialised[p.index()] && own && !crate::fuse::memory_operand(op, p) {
                    continue;
                }
                if let Some((src, _)) = resolve(module, &cx.materialised, p) {
                    if cx.fusion.group(src).is_some_and(|h| h.index() == g) {
                        return Err(internal(format!(
                            "group g{g} reads its own {src} from memory"
                        )));
                    }
                    needed[src.index()] = true;
                }
            }
        }
    }
    Ok(needed)
}

/// Creates the buffers of the values that need one, in value order.
fn create_buffers(cx: &mut Cx, plan: &mut Plan, needed: &[bool]) {
    let module = cx.module;
    for (v, inst) in module.insts.iter() {
        if !needed[v.index()] {
            continue;
        }
        let name = inst.name.clone().unwrap_or_else(|| v.to_string());
        let (kind, name) = match &inst.op {
            Op::Input { name, .. } => (BufferKind::Input(name.clone()), name.clone()),
            Op::Weight(w) => (BufferKind::Weight(*w), module.weights[*w].name.clone()),
            _ => match module.outputs.iter().find(|(_, o)| *o == v) {
                Some((out, _)) => (BufferKind::Output(out.clone()), out.clone()),
                None => (BufferKind::Temp, name),
            },
        };
        let id = plan.buffers.push(Buffer {
            name,
            rows: row_space(inst.ty.domain),
            shape: inst.ty.shape.clone(),
            dtype: inst.ty.dtype,
            kind,
            slot: None,
        });
        cx.buf_of.insert(v, id);
    }
}

/// The GEMM of a group: `members[0]` is the `linear`, the rest its epilogue chain.
fn lower_gemm(cx: &Cx, members: &[ValueId]) -> Result<Gemm, PassError> {
    let module = cx.module;
    let (&first, chain) =
        members.split_first().ok_or_else(|| internal("empty gemm group".into()))?;
    let Op::Linear { x, w, by } = module.insts[first].op else {
        return Err(internal(format!("gemm group starts with {first}, not a linear")));
    };
    let (a, gather) = cx.read(x)?;
    let (b, windex) = cx.read(w)?;
    let segment = match (windex, by) {
        (RowIndex::This, by) => by,
        (RowIndex::Select(s), Select::Same) => s,
        _ => return Err(internal(format!("{first}: weight {w} is read through {windex:?}"))),
    };
    let (_, form) = pigeon_ir::shape::linear(&module.ty(x).shape, &module.ty(w).shape)
        .ok_or_else(|| internal(format!("{first}: shapes do not contract")))?;
    let mut epilogue = Vec::new();
    let mut store = StoreMode::Write;
    let mut y = first;
    for &u in chain {
        let other = |a: ValueId, b: ValueId| if a == y { b } else { a };
        match module.insts[u].op {
            Op::Binary { op: BinaryOp::Mul, a, b } => {
                let (buf, index) = cx.read(other(a, b))?;
                epilogue.push(Epilogue::Scale { buf, index });
            }
            Op::Binary { op: BinaryOp::Add, a, b } => {
                let (buf, index) = cx.read(other(a, b))?;
                epilogue.push(Epilogue::Add { buf, index });
            }
            Op::Unary { op, .. } => epilogue.push(Epilogue::Unary(op)),
            Op::Aggregate { .. } => store = StoreMode::AddIntoDst,
            ref op if crate::fuse::is_node_scatter(op) => {
                store = crate::fuse::scatter_store(op)
                    .ok_or_else(|| internal(format!("{u} is no scatter")))?
            }
            _ => return Err(internal(format!("{u} cannot be a gemm epilogue"))),
        }
        y = u;
    }
    let c = cx.buf_of.get(&y).copied().ok_or_else(|| internal(format!("{y} has no buffer")))?;
    Ok(Gemm {
        rows: row_space(module.ty(x).domain),
        segment,
        a,
        gather,
        b,
        form,
        epilogue,
        c,
        store,
    })
}

/// The weight-gradient kernel of a `linear_grad` or `slice_sum` group.
fn lower_weight_grad(cx: &Cx, members: &[ValueId]) -> Result<WeightGrad, PassError> {
    let module = cx.module;
    let &[m] = members else {
        return Err(internal(format!("a weight-gradient group of {} members", members.len())));
    };
    let c = cx.buf_of.get(&m).copied().ok_or_else(|| internal(format!("{m} has no buffer")))?;
    let (a, b, by, form) = match &module.insts[m].op {
        Op::LinearGrad { x, dy, by, shape, .. } => {
            let (_, form) = pigeon_ir::shape::linear(&module.ty(*x).shape, shape)
                .ok_or_else(|| internal(format!("{m}: shapes do not contract")))?;
            (Some(cx.read(*x)?), cx.read(*dy)?, *by, form)
        }
        Op::SliceSum { x, by, .. } => {
            let form = LinearForm::Plain { k: 1, n: module.ty(*x).shape.numel() };
            (None, cx.read(*x)?, *by, form)
        }
        _ => return Err(internal(format!("{m} is not a weight gradient"))),
    };
    let x = match &module.insts[m].op {
        Op::LinearGrad { x, .. } | Op::SliceSum { x, .. } => *x,
        _ => m,
    };
    Ok(WeightGrad { rows: row_space(module.ty(x).domain), segment: by, a, b, form, c })
}

/// Output buffers: a value's first output names its buffer; an input, a weight, or a value
/// output under a second name is copied into its own output buffer by a `Rows` traversal.
fn add_outputs(cx: &Cx, plan: &mut Plan) -> Result<(), PassError> {
    for (name, v) in &cx.module.outputs {
        let buf = cx.buf_of.get(v).copied().ok_or_else(|| internal(format!("output {v}")))?;
        if plan.buffers[buf].kind == BufferKind::Output(name.clone()) {
            plan.outputs.push((name.clone(), buf));
            continue;
        }
        let src = plan.buffers[buf].clone();
        let out = plan.buffers.push(Buffer {
            name: name.clone(),
            kind: BufferKind::Output(name.clone()),
            slot: None,
            ..src.clone()
        });
        plan.kernels.push(Kernel::Traversal(body::copy_rows(buf, out, &src)));
        plan.outputs.push((name.clone(), out));
    }
    Ok(())
}

/// The layouts the kernels need, sorted.
fn layouts(plan: &Plan) -> Vec<Layout> {
    let mut set = BTreeSet::new();
    let index = |set: &mut BTreeSet<Layout>, i: RowIndex| match i {
        RowIndex::EdgeToCompact(e) => {
            set.insert(Layout::Compact(e));
        }
        RowIndex::Select(s) => select_layout(set, s),
        _ => {}
    };
    for b in plan.buffers.values() {
        if let RowSpace::Compact(e) = b.rows {
            set.insert(Layout::Compact(e));
        }
    }
    for k in plan.kernels.values() {
        match k {
            Kernel::Gemm(g) => {
                if g.rows == RowSpace::Edges && g.segment == Select::Relation {
                    set.insert(Layout::EdgesByRelation);
                }
                if let RowSpace::Compact(e) = g.rows {
                    set.insert(Layout::Compact(e));
                }
                select_layout(&mut set, g.segment);
                index(&mut set, g.gather);
                for e in &g.epilogue {
                    if let Epilogue::Scale { index: i, .. } | Epilogue::Add { index: i, .. } = e {
                        index(&mut set, *i);
                    }
                }
            }
            Kernel::WeightGrad(g) => {
                if g.rows == RowSpace::Edges && g.segment == Select::Relation {
                    set.insert(Layout::EdgesByRelation);
                }
                if let RowSpace::Compact(e) = g.rows {
                    set.insert(Layout::Compact(e));
                }
                select_layout(&mut set, g.segment);
                index(&mut set, g.b.1);
                if let Some((_, i)) = g.a {
                    index(&mut set, i);
                }
            }
            Kernel::Traversal(t) => {
                match t.schedule {
                    Schedule::NodeParallel => {
                        set.insert(Layout::InCsr);
                    }
                    Schedule::Rows(RowSpace::Compact(e)) => {
                        set.insert(Layout::Compact(e));
                    }
                    _ => {}
                }
                for s in &t.body {
                    match s.op {
                        pigeon_ir::plan::StmtOp::Load { index: i, .. } => index(&mut set, i),
                        pigeon_ir::plan::StmtOp::MatVec { select, .. } => {
                            select_layout(&mut set, select)
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    set.into_iter().collect()
}

fn select_layout(set: &mut BTreeSet<Layout>, s: Select) {
    if matches!(s, Select::NodeType | Select::SrcType | Select::DstType) {
        set.insert(Layout::NodesByType);
    }
}
