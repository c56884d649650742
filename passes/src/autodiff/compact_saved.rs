//! Saved values on compact rows: after the pipeline has optimised the forward module of a
//! [`Split`] for a graph, a saved edge value that compact materialization turned into a
//! read-back `gather X by compact.ep` of a compact value `X` is saved as `X` itself, and the
//! backward module reads it back through the same edge-to-compact index.
//!
//! Without this, the forward plan writes the read-back as a whole edge table (E rows) only so
//! that the backward plan can load it per edge, where the compact table (one row per unique
//! (node, relation) pair of the endpoint) holds the same values. For HGT on ACM, `kr` and `vr`
//! are 15,265 compact rows instead of 34,852 edge rows each.
//!
//! # Naming
//!
//! A relocated saved value `saved:vN` (the name [`split`](super::split) gave the edge value)
//! becomes the forward output `saved:vN@compact.src` (or `@compact.dst`, the domain of `X`);
//! [`compact_saved_name`] spells it. Its [`Saved`] entry takes that name and `X`'s type, so
//! [`Saved::bytes`] counts compact rows.
//!
//! # Before and after
//!
//! The optimised forward module (HGT, abridged) and the backward module that reads `kr`:
//!
//! ```text
//! forward before                                  forward after
//! v7 = linear v4, v6 by relation : compact.src    v7 = linear v4, v6 by relation : compact.src
//! v8 = gather v7 by compact.src  : edge           v8 = gather v7 by compact.src  : edge
//! output "saved:v18" = v8                         output "saved:v18@compact.src" = v7
//!
//! backward before                                 backward after
//! v5 = input "saved:v18" : edge [1, 64]           v5 = input "saved:v18@compact.src" : compact.src [1, 64]
//!                                                 v6 = gather v5 by compact.src      : edge [1, 64]
//! ```
//!
//! The relocated forward module is the optimised one, so [`compile_split`] lowers it with the
//! inter-level rewrites (reordering, compaction) off: they already ran.

use super::{Saved, Split, SAVED};
use crate::pipeline::verified;
use crate::{Options, PassError};
use pigeon_ir::plan::Plan;
use pigeon_ir::{Domain, Endpoint, GraphStats, Index, InputKind, Inst, Module, Op, Type, ValueId};
use std::collections::HashMap;

/// The name under which saved value `saved` is returned on the compact rows of `endpoint`:
/// `saved:v18@compact.src`.
pub fn compact_saved_name(saved: &str, endpoint: Endpoint) -> String {
    format!("{saved}@{}", Domain::Compact(endpoint))
}

/// `split` with every saved value that `forward` (its forward module as the pipeline optimised
/// it, `Compiled::module`) returns as `gather X by compact.ep` saved as `X` instead (see the
/// module doc); `None` when there is none. The result's forward module is `forward` with those
/// outputs renamed and redirected; its backward module reads each one through a gather by
/// `compact.ep`; its saved entries name values of the new forward module.
pub fn save_compact(split: &Split, forward: &Module) -> Result<Option<Split>, PassError> {
    let mut fwd = forward.clone();
    // Edge name -> (compact name, compact type).
    let mut moved: HashMap<String, (String, Type)> = HashMap::new();
    for (name, v) in fwd.outputs.iter_mut() {
        if !name.starts_with(SAVED) || !split.saved.iter().any(|s| s.name == *name) {
            continue;
        }
        let inst = forward.insts.get(*v).ok_or_else(|| internal(format!("output {name}")))?;
        let Op::Gather { x, index: Index::EdgeToCompact(ep) } = inst.op else { continue };
        let new = compact_saved_name(name, ep);
        moved.insert(name.clone(), (new.clone(), forward.ty(x).clone()));
        *name = new;
        *v = x;
    }
    if moved.is_empty() {
        return Ok(None);
    }
    let fwd = verified(crate::cleanup::cleanup(&fwd), "save-compact (forward)")?;
    let backward = verified(read_compact(&split.backward, &moved)?, "save-compact (backward)")?;
    let mut saved = Vec::with_capacity(split.saved.len());
    for s in &split.saved {
        let name = moved.get(&s.name).map_or_else(|| s.name.clone(), |(n, _)| n.clone());
        let value = fwd
            .outputs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, v)| v)
            .ok_or_else(|| internal(format!("the forward module lost output `{name}`")))?;
        saved.push(Saved { name, value, ty: fwd.ty(value).clone() });
    }
    Ok(Some(Split { forward: fwd, backward, saved }))
}

/// `backward` with each input named in `moved` replaced by the compact input it names, read
/// back by `gather .. by compact.ep`.
fn read_compact(
    backward: &Module,
    moved: &HashMap<String, (String, Type)>,
) -> Result<Module, PassError> {
    let mut out = Module { insts: Default::default(), outputs: Vec::new(), ..backward.clone() };
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    for (v, inst) in backward.insts.iter() {
        let compact = match &inst.op {
            Op::Input { name, .. } => moved.get(name),
            _ => None,
        };
        let nv = match compact {
            Some((name, ty)) => {
                let Domain::Compact(ep) = ty.domain else {
                    return Err(internal(format!("`{name}` is saved as a {} value", ty.domain)));
                };
                let input = out.insts.push(Inst {
                    op: Op::Input { name: name.clone(), kind: InputKind::Data },
                    ty: ty.clone(),
                    name: None,
                });
                out.insts.push(Inst {
                    op: Op::Gather { x: input, index: Index::EdgeToCompact(ep) },
                    ty: inst.ty.clone(),
                    name: inst.name.clone(),
                })
            }
            None => {
                let op = crate::cleanup::remap(&inst.op, |x| map.get(&x).copied().unwrap_or(x));
                out.insts.push(Inst { op, ..inst.clone() })
            }
        };
        map.insert(v, nv);
    }
    out.outputs = backward
        .outputs
        .iter()
        .map(|(n, v)| (n.clone(), map.get(v).copied().unwrap_or(*v)))
        .collect();
    Ok(out)
}

/// The forward and backward plans of a [`Split`] compiled for one graph, and the split they
/// were compiled from (with saved values moved onto compact rows where the forward computes
/// them there).
#[derive(Clone, Debug)]
pub struct CompiledSplit {
    /// The split the plans implement: the input split, or its [`save_compact`] rewrite.
    pub split: Split,
    /// The forward plan.
    pub forward: Plan,
    /// The backward plan.
    pub backward: Plan,
}

/// Compiles both modules of `split` for a graph of sizes `stats` with `options`: the forward
/// module with the whole pipeline; then, when [`save_compact`] moves saved values onto compact
/// rows, the rewritten forward module again with reordering and compaction off (the module is
/// already the optimised one; fusion, lowering, schedules and slots run again for the new
/// outputs); then the (rewritten) backward module with the whole pipeline.
pub fn compile_split(
    split: &Split,
    stats: &GraphStats,
    options: &Options,
) -> Result<CompiledSplit, PassError> {
    let plan_of = |compiled: crate::Compiled, m: &Module| {
        compiled.plan.ok_or_else(|| internal(format!("the pipeline gave no plan for `{}`", m.name)))
    };
    let plan = |m: &Module, options: &Options| -> Result<Plan, PassError> {
        plan_of(crate::compile(m, stats, options, None)?, m)
    };
    let first = crate::compile(&split.forward, stats, options, None)?;
    let (split, forward) = match save_compact(split, &first.module)? {
        None => (split.clone(), plan_of(first, &split.forward)?),
        Some(moved) => {
            let lowering = Options { reorder: false, compact: false, ..options.clone() };
            let forward = plan(&moved.forward, &lowering)?;
            (moved, forward)
        }
    };
    let backward = plan(&split.backward, options)?;
    Ok(CompiledSplit { split, forward, backward })
}

/// Differentiates `forward` for a graph of sizes `stats` and compiles the result: when
/// `options.reorder`, linear-operator reordering runs on the forward module *first*, so that
/// the backward module is the derivative of the reordered forward one (a weight product that
/// reordering folds, HGT's `Wk[src.ntype] @ k_rel[relation]`, then has its gradient through
/// the product's own rules, and the per-node value it replaces is neither computed nor saved);
/// then [`super::differentiate`] (by the inputs named in `inputs`), [`super::split`] and
/// [`compile_split`]. The gradient names are those of `forward` (reordering keeps the weights,
/// inputs and outputs).
pub fn compile_for_graph(
    forward: &Module,
    inputs: &[&str],
    stats: &GraphStats,
    options: &Options,
) -> Result<(super::Differentiated, CompiledSplit), PassError> {
    let reordered;
    let forward = if options.reorder {
        let limits = crate::reorder_linear::ReorderLimits::default();
        reordered = crate::reorder_linear::reorder_linear(forward, stats, &limits)?.0;
        &reordered
    } else {
        forward
    };
    let diff = super::differentiate(forward, inputs)?;
    let split = super::split(&diff)?;
    let compiled = compile_split(&split, stats, options)?;
    Ok((diff, compiled))
}

fn internal(message: String) -> PassError {
    PassError::Internal { pass: "save-compact", message }
}
