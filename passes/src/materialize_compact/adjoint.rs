//! Compact adjoints: the backward counterpart of compact materialization.
//!
//! In a backward module, the transposes of compact-materialised forward values still run over
//! every edge: the weight gradient of `src.h @ W[relation]` is a sum over edges of outer products
//! `h_src (x) dy_e`, and the input gradient of it is `dy_e @ W[relation]^T` scattered into each
//! edge's source. Both only read the edge rows through their (source, relation) pair, so they
//! can sum the edge adjoint `dy_e` per compact row first and then do the arithmetic once per
//! pair, as the forward does:
//!
//! ```text
//! linear_grad X, G by s          ->  linear_grad X', scatter G by compact.ep by s
//! scatter (linear G, W by s) by ep  ->  scatter (linear (scatter G by compact.ep), W by s) by node.ep
//! ```
//!
//! where `X` is an edge value that is pure for endpoint `ep` (a gather by `ep` of a node value,
//! a compact value read back by `compact.ep`, or an endpoint-pure expression of them, see the
//! parent module's legality analysis), `X'` its copy on `compact.ep` rows, and the selector `s`
//! is the same on every edge of one (node, relation) pair (`relation`, `same`, or the type of
//! node `ep`). Both are exact: `sum_e x_c(e) (x) g_e = sum_c x_c (x) (sum_{e in c} g_e)`, and a
//! linear map commutes with the sum. The summed adjoint `scatter G by compact.ep` is shared by
//! every rewrite that reads the same `G`.
//!
//! A `slice_sum G by relation` of an edge adjoint that is summed per compact row anyway (for a
//! rewritten `linear_grad`, the bias of a per-relation product) sums those compact rows
//! instead: `slice_sum G by s -> slice_sum (scatter G by compact.ep) by s`, so the edge adjoint
//! need not be stored per edge for it.
//!
//! The GEMM rows go from `E` to `C`, for one extra pass over the edge adjoint (its scatter into
//! compact rows, which fuses into the traversal that computes `G`). The rewrite is applied when
//! compaction pays in the forward sense ([`super::MIN_SAVED_PERCENT`] of the rows saved).

use super::{analyse, profitable, Analysis, Dep};
use crate::cleanup::remap;
use pigeon_ir::infer::infer_type;
use pigeon_ir::{Domain, Endpoint, Index, Inst, Module, Op, Select, ValueId};
use pigeon_ir::{EntityId, GraphStats};
use std::collections::HashMap;

/// One rewritten adjoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactedAdjoint {
    /// The instruction rewritten, in the input module.
    pub value: ValueId,
    /// `linear_grad` or `scatter`.
    pub what: &'static str,
    /// The endpoint whose compact rows it now runs on.
    pub endpoint: Endpoint,
}

/// The rewrites that apply to instruction `v`, before any change: the endpoint.
fn candidate(module: &Module, a: &Analysis, stats: &GraphStats, v: ValueId) -> Option<Endpoint> {
    let edge = |x: ValueId| module.ty(x).domain == Domain::Edge;
    let ep = match module.insts[v].op {
        Op::LinearGrad { x, dy, by, .. } if edge(x) && edge(dy) => {
            let ep = pure_endpoint(module, a, x)?;
            select_same_per_pair(by, ep).then_some(ep)?
        }
        Op::Scatter { x: y, index: Index::Node(ep) } if edge(y) => {
            let Op::Linear { x: g, w, by } = module.insts[y].op else { return None };
            let weight_like = module.ty(w).domain.is_weight_like();
            (edge(g) && weight_like && select_same_per_pair(by, ep) && single_use(module, y))
                .then_some(ep)?
        }
        _ => return None,
    };
    profitable(stats, ep).then_some(ep)
}

/// Whether selector `by` picks the same slice for every edge of one (node, relation) pair of
/// endpoint `ep`.
fn select_same_per_pair(by: Select, ep: Endpoint) -> bool {
    matches!(Dep::of_select(by), Dep::Relation) || Dep::of_select(by) == Dep::Endpoint(ep)
}

/// The endpoint `x` is pure for: by the legality analysis, or as a compact value read back.
fn pure_endpoint(module: &Module, a: &Analysis, x: ValueId) -> Option<Endpoint> {
    if let Op::Gather { index: Index::EdgeToCompact(ep), .. } = module.insts[x].op {
        return Some(ep);
    }
    match a.dep.get(x.index()).copied().flatten() {
        Some(Dep::Endpoint(ep)) => Some(ep),
        _ => None,
    }
}

/// Whether `v` is read by exactly one instruction and is no output.
fn single_use(module: &Module, v: ValueId) -> bool {
    let uses: usize =
        module.insts.values().map(|i| i.op.operands().iter().filter(|&&x| x == v).count()).sum();
    uses == 1 && !module.outputs.iter().any(|(_, o)| *o == v)
}

/// The module being built, with the value each input value became and the memoised compact
/// copies and compact sums.
struct Builder<'m> {
    module: &'m Module,
    out: Module,
    map: Vec<Option<ValueId>>,
    copies: HashMap<(ValueId, Endpoint), ValueId>,
    sums: HashMap<(ValueId, Endpoint), ValueId>,
}

impl Builder<'_> {
    fn push(&mut self, op: Op, name: Option<String>) -> Result<ValueId, String> {
        let out = &self.out;
        let ty = infer_type(&op, &|x| out.insts.get(x).map(|i| i.ty.clone()))
            .map_err(|e| format!("a compact adjoint would be ill-typed: {e}"))?;
        Ok(self.out.insts.push(Inst { op, ty, name }))
    }

    fn mapped(&self, v: ValueId) -> ValueId {
        self.map[v.index()].unwrap_or(v)
    }

    /// The copy of endpoint-pure edge value `v` (of the input module) on `compact.ep` rows.
    fn compact_copy(&mut self, v: ValueId, ep: Endpoint) -> Result<ValueId, String> {
        if let Some(&c) = self.copies.get(&(v, ep)) {
            return Ok(c);
        }
        let inst = &self.module.insts[v];
        let c = match inst.op {
            Op::Gather { x, index: Index::EdgeToCompact(e) } if e == ep => self.mapped(x),
            Op::Gather { x, index: Index::Node(e) } if e == ep => {
                let x = self.mapped(x);
                self.push(Op::Gather { x, index: Index::CompactNode(ep) }, inst.name.clone())?
            }
            Op::Slice { w, by, .. } => {
                let w = self.mapped(w);
                self.push(Op::Slice { w, by, domain: Domain::Compact(ep) }, inst.name.clone())?
            }
            ref op => {
                let mut op = op.clone();
                for x in op.operands_mut() {
                    *x = if self.module.ty(*x).domain == Domain::Edge {
                        self.compact_copy(*x, ep)?
                    } else {
                        self.mapped(*x)
                    };
                }
                self.push(op, inst.name.clone())?
            }
        };
        self.copies.insert((v, ep), c);
        Ok(c)
    }

    /// `scatter g by compact.ep` of edge value `g` (of the input module), shared.
    fn compact_sum(&mut self, g: ValueId, ep: Endpoint) -> Result<ValueId, String> {
        if let Some(&s) = self.sums.get(&(g, ep)) {
            return Ok(s);
        }
        let x = self.mapped(g);
        let s = self.push(Op::Scatter { x, index: Index::EdgeToCompact(ep) }, None)?;
        self.sums.insert((g, ep), s);
        Ok(s)
    }
}

/// Rewrites the edge-row adjoints of `module` onto compact rows where `stats` says it pays
/// (module doc). The result still holds the edge values no longer read; the caller cleans up.
/// An error is a bug (a rewrite that does not type).
pub fn compact_adjoints(
    module: &Module,
    stats: &GraphStats,
) -> Result<(Module, Vec<CompactedAdjoint>), String> {
    let a = analyse(module);
    // The edge adjoints a rewritten `linear_grad` sums per compact row, by endpoint.
    let summed: HashMap<ValueId, Endpoint> = module
        .insts
        .iter()
        .filter_map(|(v, inst)| match (candidate(module, &a, stats, v), &inst.op) {
            (Some(ep), Op::LinearGrad { dy, .. }) => Some((*dy, ep)),
            _ => None,
        })
        .collect();
    let mut done = Vec::new();
    let mut b = Builder {
        module,
        out: Module { insts: Default::default(), ..module.clone() },
        map: vec![None; module.insts.len()],
        copies: HashMap::new(),
        sums: HashMap::new(),
    };
    for (v, inst) in module.insts.iter() {
        let new = match (candidate(module, &a, stats, v), &inst.op) {
            (Some(ep), &Op::LinearGrad { x, dy, by, domain, ref shape }) => {
                let (xc, gc) = (b.compact_copy(x, ep)?, b.compact_sum(dy, ep)?);
                done.push(CompactedAdjoint { value: v, what: "linear_grad", endpoint: ep });
                let op = Op::LinearGrad { x: xc, dy: gc, by, domain, shape: shape.clone() };
                b.out.insts.push(Inst { op, ..inst.clone() })
            }
            (Some(ep), &Op::Scatter { x: y, .. }) => {
                let Op::Linear { x: g, w, by } = module.insts[y].op else {
                    return Err(format!("{v}: the scatter's operand is no linear"));
                };
                let gc = b.compact_sum(g, ep)?;
                let w = b.mapped(w);
                let yc = b.push(Op::Linear { x: gc, w, by }, module.insts[y].name.clone())?;
                done.push(CompactedAdjoint { value: v, what: "scatter", endpoint: ep });
                let op = Op::Scatter { x: yc, index: Index::CompactNode(ep) };
                b.out.insts.push(Inst { op, ..inst.clone() })
            }
            (None, &Op::SliceSum { x: g, by, domain })
                if summed.get(&g).is_some_and(|&ep| select_same_per_pair(by, ep)) =>
            {
                let ep = summed[&g];
                let gc = b.compact_sum(g, ep)?;
                done.push(CompactedAdjoint { value: v, what: "slice_sum", endpoint: ep });
                b.out.insts.push(Inst { op: Op::SliceSum { x: gc, by, domain }, ..inst.clone() })
            }
            _ => {
                let op = remap(&inst.op, |x| b.mapped(x));
                b.out.insts.push(Inst { op, ..inst.clone() })
            }
        };
        b.map[v.index()] = Some(new);
    }
    b.out.outputs =
        module.outputs.iter().map(|(s, v)| (s.clone(), b.map[v.index()].unwrap_or(*v))).collect();
    Ok((b.out, done))
}
