//! Extraction: choosing one e-node per e-class so that the module the choice describes is
//! cheapest, counting each chosen class once (a DAG, as the rebuilt module computes each value
//! once), under the cost model of `cost.rs`.
//!
//! egg's stock extractor minimises tree cost, which counts a value used twice twice: it would
//! happily replace `z @ k` by `x @ (W @ k)` to "save" a `z` that another use keeps alive anyway.
//! So: (1) a bottom-up tree-cost fixpoint gives every class an acyclic first choice; (2) a local
//! search, started from the input module's own nodes and from the tree choice, switches one class
//! at a time to another of its e-nodes whenever the DAG cost of everything reachable from the
//! roots drops (a switch that closes a cycle is rejected); the cheaper result of the two starts
//! wins. Deterministic: classes and nodes are visited in a fixed order.

use super::cost::node_cost;
use super::lang::Graph;
use egg::Id;
use pigeon_ir::GraphStats;
use std::collections::HashMap;

/// Rounds of the local search (each visits every reachable class once).
const MAX_ROUNDS: usize = 8;

/// A choice of e-node (index into the class's node list) per canonical class.
pub type Choice = HashMap<Id, usize>;

/// Per canonical class, the cost of each of its e-nodes.
pub struct Costs(HashMap<Id, Vec<f64>>);

impl Costs {
    /// The costs of every e-node of `g` on a graph of sizes `stats`.
    pub fn new(g: &Graph, stats: &GraphStats) -> Self {
        Costs(
            g.classes()
                .map(|c| (c.id, c.nodes.iter().map(|n| node_cost(g, stats, n)).collect()))
                .collect(),
        )
    }
    fn of(&self, c: Id, j: usize) -> f64 {
        self.0.get(&c).and_then(|v| v.get(j)).copied().unwrap_or(f64::INFINITY)
    }
}

/// The classes reachable from `roots` under `choice`, operands before users (post-order), or
/// `None` when the choice has a cycle or leaves a reachable class without a choice.
pub fn walk(g: &Graph, choice: &Choice, roots: &[Id]) -> Option<Vec<Id>> {
    let mut state: HashMap<Id, bool> = HashMap::new(); // false: on the stack, true: done
    let mut order = Vec::new();
    for &root in roots {
        let root = g.find(root);
        if state.contains_key(&root) {
            continue;
        }
        state.insert(root, false);
        let mut stack = vec![(root, 0usize)];
        while let Some(top) = stack.last_mut() {
            let (c, i) = *top;
            let node = g[c].nodes.get(*choice.get(&c)?)?;
            if let Some(&child) = node.args.get(i) {
                top.1 += 1;
                let child = g.find(child);
                match state.get(&child) {
                    Some(false) => return None,
                    Some(true) => {}
                    None => {
                        state.insert(child, false);
                        stack.push((child, 0));
                    }
                }
            } else {
                state.insert(c, true);
                order.push(c);
                stack.pop();
            }
        }
    }
    Some(order)
}

/// The DAG cost of `choice` from `roots` (infinite when it has a cycle).
pub fn dag_cost(g: &Graph, costs: &Costs, choice: &Choice, roots: &[Id]) -> f64 {
    match walk(g, choice, roots) {
        Some(order) => order.iter().map(|&c| costs.of(c, choice[&c])).sum(),
        None => f64::INFINITY,
    }
}

/// Per class, the e-node of least tree cost (a fixpoint; acyclic because every e-node costs
/// more than 0).
pub fn tree_choice(g: &Graph, costs: &Costs) -> Choice {
    let mut best: HashMap<Id, (f64, usize)> = HashMap::new();
    let mut classes: Vec<Id> = g.classes().map(|c| c.id).collect();
    classes.sort();
    for _ in 0..=classes.len() {
        let mut changed = false;
        for &c in &classes {
            for (j, n) in g[c].nodes.iter().enumerate() {
                let kids: Option<f64> =
                    n.args.iter().map(|&a| best.get(&g.find(a)).map(|b| b.0)).sum();
                let Some(kids) = kids else { continue };
                let total = costs.of(c, j) + kids;
                if !best.get(&c).is_some_and(|b| total >= b.0) {
                    best.insert(c, (total, j));
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    best.into_iter().map(|(c, (_, j))| (c, j)).collect()
}

/// Improves `choice` one class at a time while the DAG cost from `roots` drops; returns the
/// final cost.
pub fn local_search(g: &Graph, costs: &Costs, choice: &mut Choice, roots: &[Id]) -> f64 {
    let mut best = dag_cost(g, costs, choice, roots);
    for _ in 0..MAX_ROUNDS {
        let mut improved = false;
        let Some(order) = walk(g, choice, roots) else { break };
        for c in order {
            if !choice.contains_key(&c) {
                continue;
            }
            for j in 0..g[c].nodes.len() {
                if j == choice[&c] {
                    continue;
                }
                let keep = choice[&c];
                choice.insert(c, j);
                let cost = dag_cost(g, costs, choice, roots);
                if cost < best - 1e-12 * best.abs().max(1.0) {
                    best = cost;
                    improved = true;
                } else {
                    choice.insert(c, keep);
                }
            }
        }
        if !improved {
            break;
        }
    }
    best
}
