//! Kernel fusion: partitions a module's instructions into kernel groups, each of which becomes
//! one kernel of the plan (`lower_plan.rs`), so that per-edge intermediates stay in registers
//! instead of memory.
//!
//! Implements the "kernel fusion" of PIGEON / Hector (arXiv 2301.06284, sections "GEMM and
//! traversal templates" and "kernel fusion"): GEMM epilogues (scale, bias, activation,
//! scatter-add into the destination) fuse into the GEMM; element-wise, dot, softmax and
//! aggregation operators fuse into traversals.
//!
//! # Rules
//!
//! - Inputs and weights need no kernel. Constants are inlined into the traversals that read
//!   them. With fusion on, `gather` and `slice` are inlined into their readers as row indices
//!   (a GEMM gathers A inside its loads; a traversal `load`s through the index); they are only
//!   materialised (given their own kernel) when they are outputs, or when their index cannot be
//!   expressed as one [`pigeon_ir::plan::RowIndex`].
//! - GEMM groups: every `linear` except the small ones below. A GEMM absorbs its single-use
//!   epilogue chain, in order: `mul` by a per-row scalar (`rel_norm * (src.h @ W[relation])`),
//!   `add` of a row read through an index (a bias, `b[relation]`, or a same-row value), a unary
//!   activation, and finally a single-use `aggregate sum` over edges (the GEMM then adds its
//!   rows into the destination nodes: R-GCN in one kernel) or a `scatter ... by src` (it adds
//!   them into the source nodes: the input gradient of R-GCN in one kernel).
//! - Weight-gradient groups: each `linear_grad` and `slice_sum` alone, lowered to the GEMM
//!   template's weight-gradient form (`WeightGrad`), reading its operands from memory. A chain value that is an output or
//!   has several users ends the chain.
//! - MatVec rule: a `linear` on edge or compact rows with at most [`MATVEC_MAX_N`] outputs per
//!   row (an attention projection `x @ q` with `heads` outputs, a relation embedding times a
//!   small matrix) is computed in the registers of a traversal instead: at most `16 K`
//!   multiply-adds per row, where a GEMM would write an `[E, N]` tensor that the traversal then
//!   reads back.
//! - Derivative statements: `grad f`, `sum_to`, `transpose` and `narrow` are row-local like
//!   any element-wise operator; `group_size` and `max_grad` need a destination's incoming
//!   edges together, so their groups are node-parallel (and `max_grad` reads its node adjoint
//!   from memory); a `scatter ... by src` joins the traversal of its edge operand as an
//!   edge-level atomic add into source rows, and its node value is never read from that
//!   traversal's registers.
//! - Traversal groups are grown in definition order: an instruction joins the traversal groups
//!   of the operands it reads directly (as registers) when compatible: edge-level work, softmax
//!   and aggregation, and the node-level work reading the aggregate form one node-parallel
//!   group; node-only chains form `Rows(Nodes)` groups; other domains `Rows(space)` groups. A
//!   value read through a gather or a slice is read from memory, so its group must run first;
//!   a merge that would make the group graph cyclic is not made (the value is materialised
//!   instead). A value read by another group, or an output, is stored to a buffer by the group
//!   that computes it; all its other uses stay in registers.
//! - Horizontal fusion: traversal groups with the same schedule and no data path between them
//!   are merged (HGT's two skip gates and the `gelu` after the aggregation: one `Rows(Nodes)`
//!   kernel).
//! - A GEMM's epilogue may take a per-edge scalar computed by a traversal (HGT: `alpha * (K'
//!   @ v_rel[r])` summed into the destination): the traversal then stores the `[E, heads]`
//!   scalars rather than the GEMM an `[E, N]` tensor.
//!
//! With fusion off, every computing instruction is its own group.
//!
//! # Example
//!
//! ```text
//! v0 = input "h"                 : node [64] f32
//! v1 = input "rel_norm"          : edge [] f32
//! v2 = gather v0 by src          : edge [64] f32
//! v3 = weight w0                 : relation [64, 64] f32
//! v4 = linear v2, v3 by relation : edge [64] f32
//! v5 = mul v1, v4                : edge [64] f32
//! v6 = aggregate sum v5          : node [64] f32
//! v7 = weight w1                 : shared [64, 64] f32
//! v8 = linear v0, v7 by same     : node [64] f32
//! v9 = add v6, v8                : node [64] f32
//! v10 = weight w2                : shared [64] f32
//! v11 = add v9, v10              : node [64] f32
//! ```
//!
//! groups (fusion on):
//!
//! ```text
//! g0 gemm: v4 v5 v6
//! g1 gemm: v8 v9 v11
//! ```
//!
//! `v2` is gathered inside g0's loads; g1 adds `v6` (written by g0) and the bias in its epilogue.

use pigeon_ir::inter::{AggGroup, AggOp, BinaryOp, Domain, Index, Module, Op, Select, ValueId};
use pigeon_ir::plan::{RowIndex, RowSpace, Schedule, StoreMode};
use pigeon_ir::{Endpoint, EntityId};
use std::fmt;

pigeon_ir::entity_id!(
    /// A kernel group of a [`Fusion`].
    GroupId,
    "g"
);

/// The largest number of outputs per row of a `linear` on edge rows that is computed as a
/// register `matvec` inside a traversal (see the module doc) rather than as a GEMM.
pub const MATVEC_MAX_N: usize = 16;

/// The kernel template a group is lowered to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Template {
    /// A GEMM: the first member is the `linear`, the others its epilogue chain, in order.
    Gemm,
    /// The GEMM template's weight-gradient form: one `linear_grad` or `slice_sum`.
    WeightGrad,
    /// A traversal with the given schedule hint (`NodeParallel` when it holds a softmax or an
    /// aggregation, `Rows(space)` otherwise); `choose_schedules` may change it later.
    Traversal(Schedule),
}

/// One kernel group.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// The template.
    pub template: Template,
    /// Member instructions in definition order.
    pub members: Vec<ValueId>,
}

/// A partition of a module's computing instructions into kernel groups.
#[derive(Clone, Debug, PartialEq)]
pub struct Fusion {
    /// For each value (by index), its group; `None` for inputs, weights, and inlined constants,
    /// gathers and slices.
    pub group_of: Vec<Option<GroupId>>,
    /// The groups, in a valid execution order.
    pub groups: Vec<Group>,
    /// Values computed by no group but read in place through an index: `gather`, `slice` and
    /// `const` instructions inlined into their readers. Indexed by value.
    pub inlined: Vec<bool>,
}

impl Fusion {
    /// The group computing `v`, if any.
    pub fn group(&self, v: ValueId) -> Option<GroupId> {
        self.group_of.get(v.index()).copied().flatten()
    }
    /// Whether `v` is read in place by its users (an inlined gather, slice or constant).
    pub fn is_inlined(&self, v: ValueId) -> bool {
        self.inlined.get(v.index()).copied().unwrap_or(false)
    }
}

impl fmt::Display for Fusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, g) in self.groups.iter().enumerate() {
            let kind = match g.template {
                Template::Gemm => "gemm".to_string(),
                Template::WeightGrad => "weight-grad".to_string(),
                Template::Traversal(Schedule::Rows(s)) => format!("rows({})", space_name(s)),
                Template::Traversal(Schedule::NodeParallel) => "node-parallel".to_string(),
                Template::Traversal(Schedule::EdgeParallel) => "edge-parallel".to_string(),
            };
            write!(f, "{} {kind}:", GroupId::new(i))?;
            for m in &g.members {
                write!(f, " {m}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

fn space_name(s: RowSpace) -> String {
    match s {
        RowSpace::Nodes => "nodes".into(),
        RowSpace::Edges => "edges".into(),
        RowSpace::Compact(e) => format!("compact.{e}"),
        RowSpace::Relations => "relations".into(),
        RowSpace::NodeTypes => "ntypes".into(),
        RowSpace::One => "one".into(),
    }
}

/// The row space of a domain.
pub fn row_space(d: Domain) -> RowSpace {
    match d {
        Domain::Node => RowSpace::Nodes,
        Domain::Edge => RowSpace::Edges,
        Domain::Compact(e) => RowSpace::Compact(e),
        Domain::Relation => RowSpace::Relations,
        Domain::NodeType => RowSpace::NodeTypes,
        Domain::Shared => RowSpace::One,
    }
}

/// How rows of `v`'s domain read memory for `v`: the value whose buffer holds it and the row
/// index, looking through inlined gathers and slices; `None` when `v` is a constant or its
/// index chain has no single-[`RowIndex`] form. `materialised[v]` marks values with a buffer.
pub fn resolve(module: &Module, materialised: &[bool], v: ValueId) -> Option<(ValueId, RowIndex)> {
    if materialised.get(v.index()).copied().unwrap_or(false) {
        return Some((v, RowIndex::This));
    }
    match &module.insts[v].op {
        Op::Const(_) => None,
        Op::Gather { x, index } => {
            let (s, inner) = resolve(module, materialised, *x)?;
            Some((s, compose_index(inner, *index)?))
        }
        Op::Slice { w, by, .. } => match resolve(module, materialised, *w)? {
            (s, RowIndex::This) if *by == Select::Same => Some((s, RowIndex::This)),
            (s, RowIndex::This) => Some((s, RowIndex::Select(*by))),
            _ => None,
        },
        _ => Some((v, RowIndex::This)),
    }
}

/// The single index equivalent to reading through `outer` a value that reads its source
/// through `inner`.
pub fn compose_index(inner: RowIndex, outer: Index) -> Option<RowIndex> {
    let type_of = |e: Endpoint| if e == Endpoint::Src { Select::SrcType } else { Select::DstType };
    match (inner, outer) {
        (RowIndex::This, Index::Node(e) | Index::CompactNode(e)) => Some(RowIndex::Node(e)),
        (RowIndex::This, Index::EdgeToCompact(e)) => Some(RowIndex::EdgeToCompact(e)),
        // A compact row of endpoint e is keyed by the edge's e node and relation.
        (RowIndex::Node(a), Index::EdgeToCompact(e)) if a == e => Some(RowIndex::Node(e)),
        (RowIndex::Select(Select::Relation), Index::EdgeToCompact(_)) => {
            Some(RowIndex::Select(Select::Relation))
        }
        (RowIndex::Select(s), Index::EdgeToCompact(e)) if s == type_of(e) => {
            Some(RowIndex::Select(s))
        }
        (RowIndex::Select(Select::NodeType), Index::Node(e) | Index::CompactNode(e)) => {
            Some(RowIndex::Select(type_of(e)))
        }
        (RowIndex::Select(Select::Same), _) => Some(RowIndex::This),
        _ => None,
    }
}

/// Whether instruction `op` reads operand `p` from memory even when `p` is computed in the
/// same group: a matvec's weight, and a max gradient's node adjoint (read per edge through the
/// destination, while node-level registers exist only after the edge loop).
pub fn memory_operand(op: &Op, p: ValueId) -> bool {
    match *op {
        Op::Linear { w, .. } => w == p,
        Op::MaxGrad { dy, .. } => dy == p,
        _ => false,
    }
}

/// How `op` adds rows into memory if it is a scatter a kernel can run: `add_into_src` for the
/// transpose of `src.x` (edge rows) or of `node.src` (compact source rows), `add_into_dst` for
/// that of `node.dst`, `add_into_compact.e` for that of a compact-row read. Its value (node or
/// compact rows) exists only after its kernel.
pub fn scatter_store(op: &Op) -> Option<StoreMode> {
    match *op {
        Op::Scatter { index: Index::Node(Endpoint::Src), .. }
        | Op::Scatter { index: Index::CompactNode(Endpoint::Src), .. } => {
            Some(StoreMode::AddIntoSrc)
        }
        Op::Scatter { index: Index::CompactNode(Endpoint::Dst), .. } => Some(StoreMode::AddIntoDst),
        Op::Scatter { index: Index::EdgeToCompact(ep), .. } => Some(StoreMode::AddIntoCompact(ep)),
        _ => None,
    }
}

/// Whether `op` scatters rows into nodes (edge rows into their sources, compact rows into
/// their nodes): the scatters a GEMM epilogue takes.
pub fn is_node_scatter(op: &Op) -> bool {
    matches!(scatter_store(op), Some(StoreMode::AddIntoSrc | StoreMode::AddIntoDst))
}

/// Partitions `module`'s instructions into kernel groups; with `options_fuse` off, one group
/// per computing instruction.
pub fn fuse(module: &Module, options_fuse: bool) -> Fusion {
    let mut st = State::new(module, options_fuse);
    if options_fuse {
        for v in module.insts.keys() {
            if st.group_of[v.index()].is_none() && is_big_linear(module, v) {
                st.gemm_group(v);
            }
        }
    }
    for v in module.insts.keys() {
        if st.group_of[v.index()].is_some() || !st.needs_group(v) {
            continue;
        }
        if matches!(module.insts[v].op, Op::LinearGrad { .. } | Op::SliceSum { .. }) {
            st.new_group(Template::WeightGrad, vec![v]);
        } else if matches!(module.insts[v].op, Op::Linear { .. })
            && (!options_fuse || is_big_linear(module, v))
        {
            st.new_group(Template::Gemm, vec![v]);
        } else if options_fuse {
            st.join_traversal(v);
        } else {
            let hint = st.hint_for(v);
            st.new_group(Template::Traversal(hint), vec![v]);
        }
    }
    if options_fuse {
        st.merge_siblings();
    }
    st.finish()
}

/// Whether `v` is a `linear` computed as a GEMM (not as a register matvec).
fn is_big_linear(module: &Module, v: ValueId) -> bool {
    let inst = &module.insts[v];
    let Op::Linear { x, .. } = inst.op else { return false };
    !(module.ty(x).domain.is_edge_like() && inst.ty.shape.numel() <= MATVEC_MAX_N)
}

/// Working state of [`fuse`].
struct State<'m> {
    module: &'m Module,
    fuse: bool,
    users: Vec<Vec<ValueId>>,
    is_output: Vec<bool>,
    /// Values that get a buffer when computed by a group (everything but inlined values).
    materialised: Vec<bool>,
    group_of: Vec<Option<usize>>,
    groups: Vec<Option<Group>>,
}

impl<'m> State<'m> {
    fn new(module: &'m Module, fuse: bool) -> Self {
        let n = module.insts.len();
        let mut users = vec![Vec::new(); n];
        for (id, inst) in module.insts.iter() {
            for p in inst.op.operands() {
                if let Some(u) = users.get_mut(p.index()) {
                    u.push(id);
                }
            }
        }
        let mut is_output = vec![false; n];
        for (_, v) in &module.outputs {
            if let Some(o) = is_output.get_mut(v.index()) {
                *o = true;
            }
        }
        let mut st = State {
            module,
            fuse,
            users,
            is_output,
            materialised: vec![false; n],
            group_of: vec![None; n],
            groups: Vec::new(),
        };
        st.mark_materialised();
        st
    }

    /// Decides which values are computed by a group (all but inlined gathers, slices, consts).
    fn mark_materialised(&mut self) {
        let module = self.module;
        for (v, inst) in module.insts.iter() {
            let used_by_linear = self.users[v.index()]
                .iter()
                .any(|&u| matches!(module.insts[u].op, Op::Linear { .. }));
            let m = match &inst.op {
                Op::Input { .. } | Op::Weight(_) => true,
                Op::Const(_) => self.is_output[v.index()] || used_by_linear,
                Op::Gather { .. } | Op::Slice { .. } => {
                    !self.fuse
                        || self.is_output[v.index()]
                        || resolve(module, &self.materialised, v).is_none()
                }
                _ => true,
            };
            self.materialised[v.index()] = m;
        }
    }

    /// Whether `v` is computed by some group.
    fn needs_group(&self, v: ValueId) -> bool {
        let leaf = matches!(self.module.insts[v].op, Op::Input { .. } | Op::Weight(_));
        !leaf && self.materialised[v.index()]
    }

    fn new_group(&mut self, template: Template, members: Vec<ValueId>) -> usize {
        let g = self.groups.len();
        for m in &members {
            self.group_of[m.index()] = Some(g);
        }
        self.groups.push(Some(Group { template, members }));
        g
    }

    /// The schedule hint of a single-instruction traversal group for `v`.
    fn hint_for(&self, v: ValueId) -> Schedule {
        match self.module.insts[v].op {
            Op::EdgeSoftmax { .. }
            | Op::Aggregate { .. }
            | Op::GroupSize { .. }
            | Op::MaxGrad { .. } => Schedule::NodeParallel,
            Op::Scatter { x, .. } => Schedule::Rows(row_space(self.module.ty(x).domain)),
            _ => Schedule::Rows(row_space(self.module.ty(v).domain)),
        }
    }

    /// A GEMM group for the `linear` `v` with its single-use epilogue chain.
    fn gemm_group(&mut self, v: ValueId) {
        let mut members = vec![v];
        let mut y = v;
        while let Some(next) = self.epilogue_step(y) {
            members.push(next);
            y = next;
            if matches!(self.module.insts[next].op, Op::Aggregate { .. } | Op::Scatter { .. }) {
                break;
            }
        }
        self.new_group(Template::Gemm, members);
    }

    /// The single user of chain value `y` if it can join the GEMM's epilogue.
    fn epilogue_step(&self, y: ValueId) -> Option<ValueId> {
        let module = self.module;
        let users = &self.users[y.index()];
        if users.len() != 1 || self.is_output[y.index()] {
            return None;
        }
        let u = users[0];
        if self.group_of[u.index()].is_some() {
            return None; // the epilogue of another GEMM (`add(x @ W, y @ V)`)
        }
        let ty_y = module.ty(y);
        let same_shape = module.ty(u).shape == ty_y.shape && module.ty(u).domain == ty_y.domain;
        let other = |a: ValueId, b: ValueId| if a == y { b } else { a };
        let readable = |o: ValueId| o != y && resolve(module, &self.materialised, o).is_some();
        match module.insts[u].op {
            Op::Binary { op: BinaryOp::Mul, a, b } => {
                let o = other(a, b);
                (same_shape && readable(o) && module.ty(o).shape.numel() == 1).then_some(u)
            }
            Op::Binary { op: BinaryOp::Add, a, b } => {
                let o = other(a, b);
                let fits = pigeon_ir::shape::broadcast(&ty_y.shape, &module.ty(o).shape)
                    .is_some_and(|s| s == ty_y.shape);
                (same_shape && readable(o) && fits).then_some(u)
            }
            Op::Unary { .. } => Some(u),
            Op::Aggregate { op: AggOp::Sum, group: AggGroup::All, .. } => {
                (ty_y.domain == Domain::Edge).then_some(u)
            }
            ref op if is_node_scatter(op) => {
                matches!(ty_y.domain, Domain::Edge | Domain::Compact(_)).then_some(u)
            }
            _ => None,
        }
    }
}

mod traversal;
