//! Conversion between a [`Module`] and the e-graph: every instruction becomes one e-node (the
//! ones no rule rewrites are opaque e-nodes carrying their operands), and a choice of e-node per
//! class becomes a module again, in a topological order, with the original names, weights and
//! outputs.

use super::extract::{walk, Choice};
use super::lang::{with_operands, Graph, RNode, Typing};
use crate::PassError;
use egg::Id;
use pigeon_ir::{Arena, EntityId, Inst, Module, Op, ValueId};
use std::collections::HashMap;

fn internal(message: String) -> PassError {
    PassError::Internal { pass: "reorder-linear", message }
}

/// The module as an e-graph, with the class of each instruction (by value index). Identical
/// instructions land in one class (every operator is pure).
pub fn to_egraph(module: &Module) -> Result<(Graph, Vec<Id>), PassError> {
    let mut g = Graph::new(Typing::default());
    let mut class_of: Vec<Id> = Vec::with_capacity(module.insts.len());
    for (v, inst) in module.insts.iter() {
        let kind = g.analysis.kinds.intern(&inst.op);
        if matches!(inst.op, Op::Input { .. } | Op::Weight(_)) {
            g.analysis.leaf_types.entry(kind).or_insert_with(|| inst.ty.clone());
        }
        let args = inst
            .op
            .operands()
            .into_iter()
            .map(|x| class_of.get(x.index()).copied())
            .collect::<Option<Vec<Id>>>()
            .ok_or_else(|| internal(format!("{v} uses a value defined after it")))?;
        let id = g.add(RNode { kind, args });
        if g[id].data.as_ref() != Some(&inst.ty) {
            return Err(internal(format!("{v}: its type {} does not check", inst.ty)));
        }
        class_of.push(id);
    }
    g.rebuild();
    Ok((g, class_of))
}

/// The roots of the extraction: every input (the interface stays, in order) and every output.
pub fn roots(g: &Graph, module: &Module, class_of: &[Id]) -> Vec<Id> {
    let inputs = module.insts.iter().filter(|(_, i)| matches!(i.op, Op::Input { .. }));
    let inputs = inputs.filter_map(|(v, _)| class_of.get(v.index()));
    let outputs = module.outputs.iter().filter_map(|(_, v)| class_of.get(v.index()));
    inputs.chain(outputs).map(|&c| g.find(c)).collect()
}

/// The input module's own e-nodes as a choice (for the classes it has instructions in).
pub fn original_choice(g: &Graph, module: &Module, class_of: &[Id]) -> Choice {
    let mut choice = Choice::new();
    for (v, inst) in module.insts.iter() {
        let Some(&c) = class_of.get(v.index()) else { continue };
        let c = g.find(c);
        if choice.contains_key(&c) {
            continue;
        }
        let args: Option<Vec<Id>> = inst
            .op
            .operands()
            .iter()
            .map(|x| class_of.get(x.index()).map(|&a| g.find(a)))
            .collect();
        let Some(args) = args else { continue };
        let kind = g.analysis.kinds.intern_lookup(&inst.op);
        let node = kind.map(|kind| RNode { kind, args });
        if let Some(j) = node.and_then(|n| g[c].nodes.iter().position(|m| *m == n)) {
            choice.insert(c, j);
        }
    }
    choice
}

/// The module that `choice` describes: the classes reachable from `roots` in post-order, each
/// as one instruction; a class keeps the name of the first input instruction in it that had one.
pub fn rebuild(
    g: &Graph,
    module: &Module,
    class_of: &[Id],
    choice: &Choice,
    roots: &[Id],
) -> Result<Module, PassError> {
    let order = walk(g, choice, roots).ok_or_else(|| internal("the choice has a cycle".into()))?;
    let mut names: HashMap<Id, String> = HashMap::new();
    for (v, inst) in module.insts.iter() {
        if let (Some(name), Some(&c)) = (&inst.name, class_of.get(v.index())) {
            names.entry(g.find(c)).or_insert_with(|| name.clone());
        }
    }
    let mut insts: Arena<ValueId, Inst> = Arena::new();
    let mut value_of: HashMap<Id, ValueId> = HashMap::new();
    for c in order {
        let node = &g[c].nodes[choice[&c]];
        let op = g
            .analysis
            .kinds
            .op(node.kind)
            .ok_or_else(|| internal(format!("class {c}: unknown kind")))?;
        let operands = node
            .args
            .iter()
            .map(|&a| value_of.get(&g.find(a)).copied())
            .collect::<Option<Vec<ValueId>>>()
            .ok_or_else(|| internal(format!("class {c}: an operand is not yet defined")))?;
        let ty = g[c].data.clone().ok_or_else(|| internal(format!("class {c} has no type")))?;
        let v =
            insts.push(Inst { op: with_operands(op, &operands), ty, name: names.get(&c).cloned() });
        value_of.insert(c, v);
    }
    let outputs = module
        .outputs
        .iter()
        .map(|(name, v)| {
            let c = class_of.get(v.index()).map(|&c| g.find(c));
            let nv = c.and_then(|c| value_of.get(&c).copied());
            nv.map(|nv| (name.clone(), nv)).ok_or_else(|| internal(format!("output {name:?} lost")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Module {
        name: module.name.clone(),
        params: module.params.clone(),
        weights: module.weights.clone(),
        insts,
        outputs,
    })
}
