//! Compact materialization: an edge value that depends only on one endpoint's node and the
//! edge's relation is computed once per unique (node, relation) pair of that endpoint, and the
//! edges read it back through the edge-to-row index.
//!
//! This is the "compact materialization" of PIGEON / Hector (Wu et al., ASPLOS'24, arXiv
//! 2301.06284), one of its two inter-operator optimisations beside linear operator reordering
//! (summarised in `shared/PEERS.md`): in a relational graph many edges share
//! their (source, relation) pair (parallel edges, and every edge of a node that sends on one
//! relation to many neighbours), so `src.h @ W[relation]` computed per edge repeats the same
//! GEMM row many times. Computed per unique pair instead, the work and the intermediate tensor
//! shrink from E rows to the number of unique pairs.
//!
//! # Legality
//!
//! An edge value is *endpoint-pure* for endpoint `ep` when its computation, traced back through
//! edge-domain operands, reaches only
//! * `gather x by ep` of node values (any node value, however computed),
//! * slices and linears whose weight is selected by `relation`, `same` (shared weights), or the
//!   same endpoint's type (`src.ntype` for `src`, `dst.ntype` for `dst`),
//! * shared values and constants,
//!
//! and touches no per-edge input (`rel_norm`, edge features), no edge softmax, no existing
//! compact value, and nothing from the other endpoint. Such a value is the same for every edge
//! of one (node, relation) pair, so computing it on `compact.ep` rows is exact: each compact row
//! carries its relation and its node (`infer::check_select` accepts these selectors on compact
//! rows).
//!
//! # What is rewritten
//!
//! A *root* is an endpoint-pure value that contains real work (a `linear` or a `dot` among its
//! edge-domain ancestors) and is used by something that is not pure for the same endpoint (or
//! is an output): the maximal compactable subtrees. Every edge-domain instruction of a root's
//! subtree is copied onto `compact.ep` (`gather x by ep` becomes `gather x by node.ep`, a slice's
//! domain becomes `compact.ep`, selectors stay), copies are shared between roots, and the root
//! itself becomes `gather root' by compact.ep`. The originals no longer read are removed by
//! [`cleanup`](crate::cleanup::cleanup), which the pass runs last; weights are untouched.
//!
//! # Profitability
//!
//! Per endpoint, with `C` its compact rows and `E` the edges (from [`GraphStats`]): compact
//! only when `E > 0` and `C <= E * (100 - MIN_SAVED_PERCENT) / 100`, i.e. at least
//! [`MIN_SAVED_PERCENT`] (20%) of the rows are saved. Below that the saving does not pay for
//! what compaction adds: the compact table (one row index per edge, built once per graph) and
//! the read-back gather (E rows of the result's width), which cost about as much as one or two
//! element-wise passes over the edge tensor. On a graph where every pair is unique (`C == E`)
//! nothing changes. Candidates declined for this reason are listed in the [`CompactReport`].
//!
//! # Adjoints
//!
//! In a backward module the pass then moves the adjoints of such values onto compact rows too
//! (`materialize_compact/adjoint.rs`): weight gradients whose row operand is endpoint-pure, and
//! source scatters of a linear, sum the edge adjoint per (node, relation) pair first
//! ([`CompactReport::adjoints`]).
//!
//! # Example
//!
//! Before (`examples/rgcn.rgnn` at `in_dim = 4, out_dim = 2`, abridged after `v6`):
//!
//! ```text
//! v0 = input "h"                 : node [4] f32         ; h
//! v1 = input "rel_norm"          : edge [] f32          ; rel_norm
//! v2 = gather v0 by src          : edge [4] f32
//! v3 = weight w0                 : relation [4, 2] f32  ; W
//! v4 = linear v2, v3 by relation : edge [2] f32
//! v5 = mul v1, v4                : edge [2] f32         ; msg
//! v6 = aggregate sum v5          : node [2] f32
//! ```
//!
//! After, on a graph with at most 80% as many unique (source, relation) pairs as edges: `v4`
//! is source-pure with a linear and feeds `mul` with the per-edge `rel_norm`, so it is the
//! root; `msg` itself is not compacted, since `rel_norm` is per edge:
//!
//! ```text
//! v0 = input "h"                 : node [4] f32         ; h
//! v1 = input "rel_norm"          : edge [] f32          ; rel_norm
//! v2 = gather v0 by node.src     : compact.src [4] f32
//! v3 = weight w0                 : relation [4, 2] f32  ; W
//! v4 = linear v2, v3 by relation : compact.src [2] f32
//! v5 = gather v4 by compact.src  : edge [2] f32
//! v6 = mul v1, v5                : edge [2] f32         ; msg
//! v7 = aggregate sum v6          : node [2] f32
//! ```
//!
//! The report for that graph (with 24 edges and 8 unique pairs) reads:
//!
//! ```text
//! compact materialization: 1 value(s) compacted, 2 instruction(s) on compact rows, 16 rows saved
//!   v4 on compact.src: 24 edge rows -> 8 compact rows (16 saved); computed as v4, read back as v5
//! ```

mod adjoint;

pub use adjoint::CompactedAdjoint;

use crate::cleanup::cleanup_with_map;
use pigeon_ir::{Domain, Endpoint, EntityId, GraphStats, Index, Inst, Module, Op, Select, ValueId};
use std::fmt;

/// The least share of edge rows, in percent, that compaction must save to be applied.
pub const MIN_SAVED_PERCENT: usize = 20;

const ENDPOINTS: [Endpoint; 2] = [Endpoint::Src, Endpoint::Dst];

/// A value moved onto compact rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactedValue {
    /// The edge value in the input module.
    pub value: ValueId,
    /// Its name in the model, if any.
    pub name: Option<String>,
    /// The endpoint whose (node, relation) pairs key the rows.
    pub endpoint: Endpoint,
    /// Rows before: one per edge.
    pub edge_rows: usize,
    /// Rows after: one per unique (node, relation) pair.
    pub compact_rows: usize,
    /// In the output module: the value computed on compact rows.
    pub compact: ValueId,
    /// In the output module: the edge value reading it back (replaces `value`).
    pub result: ValueId,
}

impl CompactedValue {
    /// Rows no longer computed.
    pub fn rows_saved(&self) -> usize {
        self.edge_rows.saturating_sub(self.compact_rows)
    }
}

/// A legal candidate left on edges because compaction would save too few rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclinedValue {
    /// The edge value in the input module.
    pub value: ValueId,
    /// Its name in the model, if any.
    pub name: Option<String>,
    /// The endpoint it depends on.
    pub endpoint: Endpoint,
    /// Edge rows.
    pub edge_rows: usize,
    /// Compact rows it would have had.
    pub compact_rows: usize,
}

/// What [`materialize_compact`] did.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CompactReport {
    /// Values computed on compact rows, in module order.
    pub compacted: Vec<CompactedValue>,
    /// Legal candidates not compacted (not profitable on this graph), in module order.
    pub declined: Vec<DeclinedValue>,
    /// Instructions of the output module on compact rows.
    pub compact_insts: usize,
    /// Adjoints (weight gradients and source scatters of a backward module) moved onto compact
    /// rows (`adjoint.rs`), in module order.
    pub adjoints: Vec<CompactedAdjoint>,
    /// Why the adjoints were left on edges, when their rewrite failed (a bug in pigeon).
    pub adjoint_error: Option<String>,
}

impl CompactReport {
    /// Rows saved over all compacted values.
    pub fn rows_saved(&self) -> usize {
        self.compacted.iter().map(CompactedValue::rows_saved).sum()
    }
}

fn label(v: ValueId, name: &Option<String>) -> String {
    match name {
        Some(n) => format!("{v} ({n})"),
        None => v.to_string(),
    }
}

impl fmt::Display for CompactReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "compact materialization: {} value(s) compacted, {} instruction(s) on compact rows, \
             {} rows saved",
            self.compacted.len(),
            self.compact_insts,
            self.rows_saved()
        )?;
        for c in &self.compacted {
            writeln!(
                f,
                "  {} on compact.{}: {} edge rows -> {} compact rows ({} saved); computed as {}, \
                 read back as {}",
                label(c.value, &c.name),
                c.endpoint,
                c.edge_rows,
                c.compact_rows,
                c.rows_saved(),
                c.compact,
                c.result
            )?;
        }
        for a in &self.adjoints {
            writeln!(f, "  adjoint {} ({}) on compact.{}", a.value, a.what, a.endpoint)?;
        }
        if let Some(e) = &self.adjoint_error {
            writeln!(f, "  adjoints left on edges: {e}")?;
        }
        for d in &self.declined {
            writeln!(
                f,
                "  {} left on edges: compact.{} would have {} rows for {} edges (saves less than \
                 {}%)",
                label(d.value, &d.name),
                d.endpoint,
                d.compact_rows,
                d.edge_rows,
                MIN_SAVED_PERCENT
            )?;
        }
        Ok(())
    }
}

/// What an edge value depends on, as far as compaction cares.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Dep {
    /// Only the relation, shared values and constants: the same on every edge of a relation.
    Relation,
    /// Only one endpoint's node (and the relation): endpoint-pure.
    Endpoint(Endpoint),
    /// Something per edge (or both endpoints): not compactable.
    Edge,
}

impl Dep {
    fn join(self, other: Dep) -> Dep {
        match (self, other) {
            (Dep::Relation, d) | (d, Dep::Relation) => d,
            (Dep::Endpoint(a), Dep::Endpoint(b)) if a == b => Dep::Endpoint(a),
            _ => Dep::Edge,
        }
    }

    fn of_select(by: Select) -> Dep {
        match by {
            Select::Same | Select::Relation => Dep::Relation,
            Select::SrcType => Dep::Endpoint(Endpoint::Src),
            Select::DstType => Dep::Endpoint(Endpoint::Dst),
            Select::NodeType => Dep::Edge,
        }
    }
}

/// The legality analysis: for each edge value its [`Dep`], and whether its edge-domain
/// ancestry contains a `linear` or `dot`.
struct Analysis {
    dep: Vec<Option<Dep>>,
    work: Vec<bool>,
}

fn analyse(module: &Module) -> Analysis {
    let n = module.insts.len();
    let mut dep: Vec<Option<Dep>> = vec![None; n];
    let mut work = vec![false; n];
    for (v, inst) in module.insts.iter() {
        if inst.ty.domain != Domain::Edge {
            continue;
        }
        // An operand's contribution: edge values by their analysis, weight-like values (read
        // through a selector, or shared) by nothing, anything else per edge.
        let of = |x: ValueId| match module.insts.get(x).map(|i| i.ty.domain) {
            Some(Domain::Edge) => dep.get(x.index()).copied().flatten().unwrap_or(Dep::Edge),
            Some(d) if d.is_weight_like() => Dep::Relation,
            _ => Dep::Edge,
        };
        let d = match &inst.op {
            Op::Gather { index: Index::Node(ep), .. } => Dep::Endpoint(*ep),
            Op::Slice { by, .. } => Dep::of_select(*by),
            Op::Linear { x, w, by } => of(*x).join(of(*w)).join(Dep::of_select(*by)),
            Op::Unary { x, .. } | Op::View { x, .. } => of(*x),
            Op::Binary { a, b, .. } | Op::Dot { a, b } => of(*a).join(of(*b)),
            Op::Concat { xs } => xs.iter().fold(Dep::Relation, |d, &x| d.join(of(x))),
            Op::Input { .. }
            | Op::Gather { .. }
            | Op::EdgeSoftmax { .. }
            | Op::Weight(_)
            | Op::Const(_)
            | Op::Aggregate { .. } => Dep::Edge,
            // Derivative operators are never compacted.
            _ => Dep::Edge,
        };
        dep[v.index()] = Some(d);
        let own = matches!(inst.op, Op::Linear { .. } | Op::Dot { .. });
        work[v.index()] = own
            || inst.op.operands().iter().any(|x| {
                module.insts.get(*x).is_some_and(|i| i.ty.domain == Domain::Edge)
                    && work.get(x.index()).copied().unwrap_or(false)
            });
    }
    Analysis { dep, work }
}

/// The roots: endpoint-pure values with work that escape their endpoint's pure region.
fn roots(module: &Module, a: &Analysis) -> Vec<(ValueId, Endpoint)> {
    let n = module.insts.len();
    let mut escapes = vec![false; n];
    for (_, v) in &module.outputs {
        if let Some(e) = escapes.get_mut(v.index()) {
            *e = true;
        }
    }
    for (u, inst) in module.insts.iter() {
        for x in inst.op.operands() {
            let pure_x = a.dep.get(x.index()).copied().flatten();
            if matches!(pure_x, Some(Dep::Endpoint(_))) && a.dep[u.index()] != pure_x {
                escapes[x.index()] = true;
            }
        }
    }
    module
        .insts
        .keys()
        .filter_map(|v| match a.dep[v.index()] {
            Some(Dep::Endpoint(ep)) if a.work[v.index()] && escapes[v.index()] => Some((v, ep)),
            _ => None,
        })
        .collect()
}

/// Whether compacting on endpoint `ep` pays on a graph of these sizes.
fn profitable(stats: &GraphStats, ep: Endpoint) -> bool {
    let c = stats.rows(Domain::Compact(ep));
    stats.edges > 0 && c * 100 <= stats.edges * (100 - MIN_SAVED_PERCENT)
}

/// Rewrites the maximal endpoint-pure edge subtrees of `module` onto compact rows, and then the
/// adjoints of a backward module (`adjoint.rs`), where `stats` says it pays (see the module
/// doc); returns the new module and what was done.
pub fn materialize_compact(module: &Module, stats: &GraphStats) -> (Module, CompactReport) {
    let (out, mut report) = materialize_values(module, stats);
    match adjoint::compact_adjoints(&out, stats) {
        Ok((m, done)) if !done.is_empty() => {
            report.adjoints = done;
            let m = crate::cleanup::cleanup(&m);
            report.compact_insts =
                m.insts.values().filter(|i| matches!(i.ty.domain, Domain::Compact(_))).count();
            (m, report)
        }
        Ok(_) => (out, report),
        Err(e) => {
            report.adjoint_error = Some(e);
            (out, report)
        }
    }
}

/// The forward part of [`materialize_compact`]: endpoint-pure subtrees.
fn materialize_values(module: &Module, stats: &GraphStats) -> (Module, CompactReport) {
    let analysis = analyse(module);
    let mut report = CompactReport::default();
    let mut accepted = Vec::new();
    for (v, ep) in roots(module, &analysis) {
        let (edge_rows, compact_rows) = (stats.edges, stats.rows(Domain::Compact(ep)));
        let name = module.insts[v].name.clone();
        if profitable(stats, ep) {
            accepted.push((v, ep));
        } else {
            report.declined.push(DeclinedValue {
                value: v,
                name,
                endpoint: ep,
                edge_rows,
                compact_rows,
            });
        }
    }
    if accepted.is_empty() {
        return (module.clone(), report);
    }
    let (rewritten, compact_of, result_of) = rewrite(module, &analysis, &accepted);
    let (out, map) = cleanup_with_map(&rewritten);
    let moved = |v: ValueId| map.get(v.index()).copied().flatten().unwrap_or(v);
    for (v, ep) in accepted {
        report.compacted.push(CompactedValue {
            value: v,
            name: module.insts[v].name.clone(),
            endpoint: ep,
            edge_rows: stats.edges,
            compact_rows: stats.rows(Domain::Compact(ep)),
            compact: moved(compact_of[ep_index(ep)][v.index()].unwrap_or(v)),
            result: moved(result_of[v.index()].unwrap_or(v)),
        });
    }
    report.compact_insts =
        out.insts.values().filter(|i| matches!(i.ty.domain, Domain::Compact(_))).count();
    (out, report)
}

fn ep_index(ep: Endpoint) -> usize {
    match ep {
        Endpoint::Src => 0,
        Endpoint::Dst => 1,
    }
}

/// Per endpoint, which edge values need a compact copy: the edge-domain closure of the roots.
fn needed(module: &Module, a: &Analysis, roots: &[(ValueId, Endpoint)]) -> [Vec<bool>; 2] {
    let n = module.insts.len();
    let mut need = [vec![false; n], vec![false; n]];
    for &(v, ep) in roots {
        need[ep_index(ep)][v.index()] = true;
    }
    for ep in ENDPOINTS {
        let need = &mut need[ep_index(ep)];
        for i in (0..n).rev() {
            if !need[i] {
                continue;
            }
            for x in module.insts[ValueId::new(i)].op.operands() {
                if matches!(a.dep.get(x.index()), Some(Some(Dep::Relation | Dep::Endpoint(_)))) {
                    need[x.index()] = true;
                }
            }
        }
    }
    need
}

type CopyMap = Vec<Option<ValueId>>;

/// Emits the compact copies and the read-back gathers; returns the module (with dead originals
/// still in it), the compact copy of each value per endpoint, and each root's read-back value.
fn rewrite(
    module: &Module,
    a: &Analysis,
    roots: &[(ValueId, Endpoint)],
) -> (Module, [CopyMap; 2], CopyMap) {
    let n = module.insts.len();
    let need = needed(module, a, roots);
    let mut out = Module { insts: Default::default(), ..module.clone() };
    let mut copy: [CopyMap; 2] = [vec![None; n], vec![None; n]];
    let mut map: CopyMap = vec![None; n];
    let mut result: CopyMap = vec![None; n];
    for (v, inst) in module.insts.iter() {
        for ep in ENDPOINTS {
            let e = ep_index(ep);
            if need[e][v.index()] {
                let c = out.insts.push(compact_copy(module, inst, ep, &copy[e], &map));
                copy[e][v.index()] = Some(c);
            }
        }
        let root_ep = roots.iter().find(|(r, _)| *r == v).map(|(_, ep)| *ep);
        let new = match root_ep.and_then(|ep| copy[ep_index(ep)][v.index()].map(|c| (c, ep))) {
            Some((c, ep)) => {
                let op = Op::Gather { x: c, index: Index::EdgeToCompact(ep) };
                let id = out.insts.push(Inst { op, ..inst.clone() });
                result[v.index()] = Some(id);
                id
            }
            None => {
                let op = crate::cleanup::remap(&inst.op, |x| map[x.index()].unwrap_or(x));
                out.insts.push(Inst { op, ..inst.clone() })
            }
        };
        map[v.index()] = Some(new);
    }
    out.outputs =
        module.outputs.iter().map(|(s, v)| (s.clone(), map[v.index()].unwrap_or(*v))).collect();
    (out, copy, result)
}

/// The copy of edge instruction `inst` on `compact.ep` rows: edge operands read their compact
/// copies (`copy`), others their new values (`map`), `gather by ep` reads the row's node, and
/// slices produce compact rows.
fn compact_copy(module: &Module, inst: &Inst, ep: Endpoint, copy: &CopyMap, map: &CopyMap) -> Inst {
    let domain = Domain::Compact(ep);
    let edge = |x: ValueId| module.insts.get(x).is_some_and(|i| i.ty.domain == Domain::Edge);
    let op = crate::cleanup::remap(&inst.op, |x| {
        let table = if edge(x) { copy } else { map };
        table.get(x.index()).copied().flatten().unwrap_or(x)
    });
    let op = match op {
        Op::Gather { x, index: Index::Node(e) } => Op::Gather { x, index: Index::CompactNode(e) },
        Op::Slice { w, by, .. } => Op::Slice { w, by, domain },
        op => op,
    };
    let ty = pigeon_ir::Type { domain, ..inst.ty.clone() };
    Inst { op, ty, name: inst.name.clone() }
}
