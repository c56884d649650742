//! Cleanup: common-subexpression elimination and dead-code elimination over the
//! inter-operator IR, with the surviving values renumbered densely.
//!
//! The frontend lowers every source expression on its own, so a model that writes `src.h` twice,
//! or a layer used twice, produces duplicate `gather`, `weight` and `slice` instructions; other
//! passes leave instructions behind that nothing reads any more. This pass removes both:
//!
//! * **CSE**: every operator is pure, so two instructions with the same operator, the same
//!   (already merged) operands and the same type compute the same value; the later one is
//!   replaced by the earlier one everywhere. Instructions are visited in definition order, so a
//!   chain of duplicates (`gather` then `linear` of it) merges in one sweep.
//! * **DCE**: an instruction is kept when an output depends on it, or when it is an `input`
//!   (inputs are the model's interface and stay even when unused).
//!
//! Kept instructions keep their relative order (a topological order) and are renumbered `v0,
//! v1, ...`; outputs are redirected. A merged instruction keeps the name of the first of its
//! copies; when that one has none, the first name among the later copies is taken. Weights are
//! not touched (ids and names stay, even for weights no longer read), so a `WeightStore` built
//! for the input module serves the output module too. The result verifies when the input does.
//!
//! Before (from `tests/filetests/inter/rgcn_layers.rgnn`, abridged):
//!
//! ```text
//! v0 = input "h"                      : node [4] f32         ; h
//! v1 = input "rel_norm"               : edge [] f32          ; rel_norm
//! v2 = gather v0 by src               : edge [4] f32
//! v3 = weight w0                      : relation [4, 4] f32  ; l1.W
//! v4 = linear v2, v3 by relation      : edge [4] f32
//! v5 = mul v1, v4                     : edge [4] f32
//! v6 = aggregate sum v5               : node [4] f32
//! v7 = gather v0 by src               : edge [4] f32
//! v8 = linear v7, v3 by relation      : edge [4] f32
//! v9 = aggregate mean per_relation v8 : node [4] f32
//! v10 = add v6, v9                    : node [4] f32
//! v11 = exp v10                       : node [4] f32
//! output "out" = v10
//! ```
//!
//! After (`v7` and `v8` merged into `v2` and `v4`, the unused `v11` dropped):
//!
//! ```text
//! v0 = input "h"                      : node [4] f32         ; h
//! v1 = input "rel_norm"               : edge [] f32          ; rel_norm
//! v2 = gather v0 by src               : edge [4] f32
//! v3 = weight w0                      : relation [4, 4] f32  ; l1.W
//! v4 = linear v2, v3 by relation      : edge [4] f32
//! v5 = mul v1, v4                     : edge [4] f32
//! v6 = aggregate sum v5               : node [4] f32
//! v7 = aggregate mean per_relation v4 : node [4] f32
//! v8 = add v6, v7                     : node [4] f32
//! output "out" = v8
//! ```
//!
//! Not a paper pass: PIGEON/Hector assume a clean operator graph; this is the classic
//! value-numbering cleanup (as in Cranelift's `simple_gvn` and `dce`) that keeps the graph the
//! other passes see free of the frontend's duplicates.

use pigeon_ir::{EntityId, Inst, Module, Op, ValueId};
use std::collections::HashMap;

/// Removes duplicate and dead instructions from `module` (see the module doc).
pub fn cleanup(module: &Module) -> Module {
    cleanup_with_map(module).0
}

/// [`cleanup`], also returning for each value of `module` (by index) the value of the result
/// that now holds it, or `None` when it was dead and removed.
pub fn cleanup_with_map(module: &Module) -> (Module, Vec<Option<ValueId>>) {
    let canon = value_numbering(module);
    let live = live_values(module, &canon);
    let names = merged_names(module, &canon);
    let mut out = Module {
        name: module.name.clone(),
        params: module.params.clone(),
        weights: module.weights.clone(),
        ..Module::default()
    };
    let mut map: Vec<Option<ValueId>> = vec![None; module.insts.len()];
    for (v, inst) in module.insts.iter() {
        if !live[v.index()] {
            continue;
        }
        // Operands of a live instruction are live canonical values, emitted earlier.
        let op =
            remap(&inst.op, |x| canon.get(x.index()).and_then(|c| map[c.index()]).unwrap_or(x));
        let name = names.get(&v).cloned().unwrap_or_else(|| inst.name.clone());
        map[v.index()] = Some(out.insts.push(Inst { op, ty: inst.ty.clone(), name }));
    }
    for (v, c) in canon.iter().enumerate() {
        if map[v].is_none() {
            map[v] = map[c.index()];
        }
    }
    out.outputs = module
        .outputs
        .iter()
        .map(|(name, v)| (name.clone(), map.get(v.index()).copied().flatten().unwrap_or(*v)))
        .collect();
    (out, map)
}

/// For each value, the first value computing the same thing (itself when it is the first).
fn value_numbering(module: &Module) -> Vec<ValueId> {
    let mut canon: Vec<ValueId> = Vec::with_capacity(module.insts.len());
    let mut seen: HashMap<String, ValueId> = HashMap::new();
    for (v, inst) in module.insts.iter() {
        let op = remap(&inst.op, |x| canon.get(x.index()).copied().unwrap_or(x));
        // `Op` holds floats (constants, activation slopes), so it has no `Hash`; its `Debug`
        // form with the type is an exact key (floats print round-trip exactly).
        let key = format!("{op:?} : {:?}", inst.ty);
        let c = *seen.entry(key).or_insert(v);
        canon.push(c);
    }
    canon
}

/// Which values are kept: inputs, and every canonical value an output depends on.
fn live_values(module: &Module, canon: &[ValueId]) -> Vec<bool> {
    let n = module.insts.len();
    let mut live = vec![false; n];
    for (v, inst) in module.insts.iter() {
        if matches!(inst.op, Op::Input { .. }) {
            live[v.index()] = true;
        }
    }
    for (_, v) in &module.outputs {
        if let Some(c) = canon.get(v.index()) {
            live[c.index()] = true;
        }
    }
    // Operands precede their users, so one backward sweep propagates liveness.
    for i in (0..n).rev() {
        if !live[i] || canon[i].index() != i {
            continue;
        }
        for x in module.insts[ValueId::new(i)].op.operands() {
            if let Some(c) = canon.get(x.index()) {
                live[c.index()] = true;
            }
        }
    }
    live
}

/// Names for canonical values that have none but whose merged duplicates have one.
fn merged_names(module: &Module, canon: &[ValueId]) -> HashMap<ValueId, Option<String>> {
    let mut names = HashMap::new();
    for (v, inst) in module.insts.iter() {
        let c = canon[v.index()];
        if c != v && module.insts[c].name.is_none() && inst.name.is_some() {
            names.entry(c).or_insert_with(|| inst.name.clone());
        }
    }
    names
}

/// `op` with every operand `x` replaced by `f(x)`.
pub(crate) fn remap(op: &Op, f: impl Fn(ValueId) -> ValueId) -> Op {
    let mut op = op.clone();
    for x in op.operands_mut() {
        *x = f(*x);
    }
    op
}
