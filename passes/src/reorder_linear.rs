//! Linear-operator reordering with an e-graph (egg): moves linear operators so that products
//! are computed in the cheapest domain for the graph at hand.
//!
//! This is the "linear operator reordering" of PIGEON / Hector (the Hector paper's
//! inter-operator optimisation of that name; summary in `../shared/PEERS.md`): when only
//! linear operators sit between two products, their order is free, and a product between two
//! *weights* (once per relation) can replace a product on every edge, e.g.
//! `dot(h_t @ W_r, a_r)` = `h_t @ (W_r @ a_r)`. pigeon generalises it to several heads, to
//! weights shared or selected by the same selector, and lets a cost model fed by the graph's
//! sizes decide, per graph, whether each rewrite pays off.
//!
//! How: the module becomes an e-graph (every instruction one e-node; instructions no rule
//! touches are opaque e-nodes), the rule table of `reorder/rules.rs` runs under egg with bounded
//! saturation ([`ReorderLimits`]: iterations, e-nodes, time; the stop reason is reported), every
//! proposed rewrite is type-checked with `pigeon_ir::infer::infer_type` (an ill-typed proposal is
//! never added), and a DAG-aware extraction (`reorder/extract.rs`) picks the cheapest equivalent
//! module. The rules:
//!
//! | rule | identity |
//! |---|---|
//! | `dot-linear-to-weight` | `dot(x @ W[s], a[s])` = `x @ dot(W, view(a, [1, ..a.shape]))[s]` |
//! | `linear-chain` | `(x @ W[s]) @ V[s']` = `x @ (W @ V)[s'']` (same selector, or one shared) |
//! | `gather-linear-swap` | `gather(h, ep) @ W[ep.ntype]` = `gather(h @ W[ntype], ep)` (or W shared) |
//! | `linear-gather-swap` | the reverse |
//! | `gather-distribute` | `gather(a ± b, ep)` = `gather(a, ep) ± gather(b, ep)`; `gather(c[ntype], ep)` = `c[ep.ntype]` |
//! | `linear-distribute` | `(a ± b) @ V` = `a @ V ± b @ V` |
//! | `slice-linear-hoist` | `b[s] @ V[s']` = `(b @ V)[s'']` |
//!
//! Selectors combine when they are equal or one weight is shared; on a graph whose relations
//! each connect one node-type pair ([`GraphStats::typed_relations`]), a node-type weight read
//! by an endpoint's type also combines with a relation weight: it is sliced into the relation
//! domain first (`slice W by src.ntype to relation`). That folds HGT's
//! `src.K @ k_rel[relation]`, `K = h @ Wk[ntype] + bk[ntype]`, into
//! `src.h @ (Wk[src.ntype] @ k_rel)[relation] + (bk[src.ntype] @ k_rel)[relation]`: K is no
//! longer computed per node (likewise V). A batched `V` with a single batch (`[1, D, N]`, one
//! head) is chained as the matrix `[D, N]`; several heads are not folded yet. Training
//! reorders the forward module before differentiating it
//! (`autodiff::compile_for_graph`), so the backward pass is the folded one's.
//!
//! # Cost function
//!
//! (Documented in full in `reorder/cost.rs`.) An instruction costs
//! `rows(domain) * work_per_row + 4 * rows(domain) * numel + 1`: rows of its result's domain on
//! this graph ([`GraphStats::rows`]) times the multiply-adds per row (linear: `batch * k * n`;
//! dot: `numel * k`; element-wise: `numel`; data movement: 0), plus 4 bytes per element written,
//! plus 1 per instruction. `view`, `slice`, `input`, `weight` and `const` cost 1 (no kernel
//! materialises them). The cost of a module is
//! the sum over its instructions, each value counted once. So the weight product of
//! `dot-linear-to-weight` costs `relations * K * H * D` once, while the per-edge product it
//! removes costs `edges * K * H * D`: it pays off when relations are fewer than edges, and the
//! pass keeps the input form otherwise. A module is only replaced when the chosen form is
//! strictly cheaper than the input.
//!
//! The output keeps the weights (ids and names: a `WeightStore` of the input serves the output),
//! the outputs and inputs, and the names of values that survive; dead instructions are dropped
//! and identical instructions merged. It verifies (`pigeon_ir::verify`) and computes the same
//! function as the input (up to floating-point reassociation).
//!
//! # Example
//!
//! `rgat_heads` (heads = 4) on a graph with many more edges than relations. Before:
//!
//! ```text
//! v0 = input "h"                     : node [64] f32             ; h
//! v1 = gather v0 by src              : edge [64] f32
//! v2 = weight w0                     : relation [64, 4, 16] f32  ; W
//! v3 = linear v1, v2 by relation     : edge [4, 16] f32          ; z
//! v4 = weight w1                     : relation [4, 16] f32      ; a_src
//! v5 = slice v4 by relation to edge  : edge [4, 16] f32
//! v6 = dot v3, v5                    : edge [4] f32
//! v7 = gather v0 by dst              : edge [64] f32
//! v8 = linear v7, v2 by relation     : edge [4, 16] f32
//! v9 = weight w2                     : relation [4, 16] f32      ; a_dst
//! v10 = slice v9 by relation to edge : edge [4, 16] f32
//! v11 = dot v8, v10                  : edge [4] f32
//! v12 = add v6, v11                  : edge [4] f32
//! ...
//! ```
//!
//! After: the destination-side score no longer materialises `dst.h @ W` per edge (`E x 64`
//! values, `E x 64 x 64` multiply-adds); the per-relation `M = dot(W, a_dst)` (`R x 64 x 4`)
//! is applied to `dst.h` instead (`E x 64 x 4`). The source side keeps its dot, because `z` is
//! needed by the messages anyway:
//!
//! ```text
//! v0 = input "h"                    : node [64] f32             ; h
//! v1 = gather v0 by src             : edge [64] f32
//! v2 = weight w0                    : relation [64, 4, 16] f32  ; W
//! v3 = linear v1, v2 by relation    : edge [4, 16] f32          ; z
//! v4 = weight w1                    : relation [4, 16] f32      ; a_src
//! v5 = slice v4 by relation to edge : edge [4, 16] f32
//! v6 = dot v3, v5                   : edge [4] f32
//! v7 = gather v0 by dst             : edge [64] f32
//! v8 = weight w2                    : relation [4, 16] f32      ; a_dst
//! v9 = view v8 as [1, 4, 16]        : relation [1, 4, 16] f32
//! v10 = dot v2, v9                  : relation [64, 4] f32
//! v11 = linear v7, v10 by relation  : edge [4] f32
//! v12 = add v6, v11                 : edge [4] f32
//! ...
//! ```

use crate::reorder::convert::{original_choice, rebuild, roots, to_egraph};
use crate::reorder::extract::{dag_cost, local_search, tree_choice, Costs};
use crate::reorder::rules::rewrites;
use crate::PassError;
use egg::{Runner, SimpleScheduler};
use pigeon_ir::{GraphStats, Module};
use std::fmt;
use std::time::Duration;

/// Bounds on equality saturation; the run stops at the first one reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReorderLimits {
    /// Most rewrite iterations.
    pub iterations: usize,
    /// Most e-nodes in the e-graph.
    pub nodes: usize,
    /// Most wall-clock time for saturation.
    pub time: Duration,
}

impl Default for ReorderLimits {
    /// 16 iterations, 20 000 e-nodes, 2 seconds: the zoo saturates in a handful of iterations
    /// and a few hundred e-nodes.
    fn default() -> Self {
        ReorderLimits { iterations: 16, nodes: 20_000, time: Duration::from_secs(2) }
    }
}

/// Why saturation stopped (egg's stop reason).
#[derive(Clone, Debug, PartialEq)]
pub enum StopReason {
    /// No rule could add anything new: every reordering within reach was explored.
    Saturated,
    /// The iteration limit was reached.
    IterationLimit(usize),
    /// The e-node limit was reached (the e-graph's size when it stopped).
    NodeLimit(usize),
    /// The time limit was reached (seconds elapsed).
    TimeLimit(f64),
    /// Anything else egg reports.
    Other(String),
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Saturated => f.write_str("saturated"),
            StopReason::IterationLimit(n) => write!(f, "iteration limit ({n})"),
            StopReason::NodeLimit(n) => write!(f, "e-node limit ({n} e-nodes)"),
            StopReason::TimeLimit(s) => write!(f, "time limit ({s:.3} s)"),
            StopReason::Other(m) => write!(f, "stopped: {m}"),
        }
    }
}

impl From<egg::StopReason> for StopReason {
    fn from(r: egg::StopReason) -> Self {
        match r {
            egg::StopReason::Saturated => StopReason::Saturated,
            egg::StopReason::IterationLimit(n) => StopReason::IterationLimit(n),
            egg::StopReason::NodeLimit(n) => StopReason::NodeLimit(n),
            egg::StopReason::TimeLimit(s) => StopReason::TimeLimit(s),
            egg::StopReason::Other(m) => StopReason::Other(m),
        }
    }
}

/// What the pass did, for dumps and tests.
#[derive(Clone, Debug, PartialEq)]
pub struct ReorderReport {
    /// Why saturation stopped.
    pub stop_reason: StopReason,
    /// Rewrite iterations run.
    pub iterations: usize,
    /// E-nodes in the final e-graph.
    pub egraph_nodes: usize,
    /// E-classes in the final e-graph.
    pub egraph_classes: usize,
    /// Cost of the input module (see the module doc).
    pub input_cost: f64,
    /// Cost of the module returned.
    pub chosen_cost: f64,
    /// Per rule that merged something new into the e-graph, how many times (by name, sorted).
    pub fired: Vec<(String, usize)>,
    /// Whether the returned module differs from the input (false when no cheaper form exists).
    pub changed: bool,
}

impl fmt::Display for ReorderReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "reorder-linear: {} after {} iterations; e-graph of {} e-nodes in {} e-classes",
            self.stop_reason, self.iterations, self.egraph_nodes, self.egraph_classes
        )?;
        let verdict = if self.changed { "reordered" } else { "input kept" };
        writeln!(f, "  cost {:.4e} -> {:.4e} ({verdict})", self.input_cost, self.chosen_cost)?;
        if self.fired.is_empty() {
            writeln!(f, "  fired: none")
        } else {
            let list: Vec<String> = self.fired.iter().map(|(n, k)| format!("{n} x{k}")).collect();
            writeln!(f, "  fired: {}", list.join(", "))
        }
    }
}

fn internal(message: String) -> PassError {
    PassError::Internal { pass: "reorder-linear", message }
}

/// Reorders the linear operators of `module` for a graph of sizes `stats` (see the module
/// doc). Returns the cheapest equivalent module found within `limits` (the input itself when
/// nothing is cheaper) and a report.
pub fn reorder_linear(
    module: &Module,
    stats: &GraphStats,
    limits: &ReorderLimits,
) -> Result<(Module, ReorderReport), PassError> {
    let (mut g, class_of) = to_egraph(module)?;
    g.analysis.typed_relations = stats.typed_relations;
    let input_cost = {
        let choice = original_choice(&g, module, &class_of);
        dag_cost(&g, &Costs::new(&g, stats), &choice, &roots(&g, module, &class_of))
    };
    let rules = rewrites().map_err(internal)?;
    let runner = Runner::default()
        .with_egraph(g)
        .with_iter_limit(limits.iterations)
        .with_node_limit(limits.nodes)
        .with_time_limit(limits.time)
        .with_scheduler(SimpleScheduler)
        .run(&rules);
    let g = runner.egraph;
    if let Some(c) = g.analysis.conflicts.first() {
        return Err(internal(format!("a rewrite changed a type: {c}")));
    }
    let roots = roots(&g, module, &class_of);
    let costs = Costs::new(&g, stats);
    let mut from_input = tree_choice(&g, &costs);
    let tree = from_input.clone();
    from_input.extend(original_choice(&g, module, &class_of));
    let mut best = from_input;
    let mut best_cost = local_search(&g, &costs, &mut best, &roots);
    let mut other = tree;
    let other_cost = local_search(&g, &costs, &mut other, &roots);
    if other_cost < best_cost {
        (best, best_cost) = (other, other_cost);
    }
    let changed = best_cost < input_cost - 1e-9 * input_cost.abs().max(1.0);
    let out = if changed { rebuild(&g, module, &class_of, &best, &roots)? } else { module.clone() };
    if let Err(errs) = pigeon_ir::verify(&out) {
        let list: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        return Err(internal(format!("the result does not verify: {}", list.join("; "))));
    }
    let report = ReorderReport {
        stop_reason: runner.stop_reason.map(StopReason::from).unwrap_or(StopReason::Saturated),
        iterations: runner.iterations.len(),
        egraph_nodes: g.total_number_of_nodes(),
        egraph_classes: g.number_of_classes(),
        input_cost,
        chosen_cost: if changed { best_cost } else { input_cost },
        fired: g.analysis.fired.iter().map(|(n, k)| (n.to_string(), *k)).collect(),
        changed,
    };
    Ok((out, report))
}
