//! The optimisation pipeline: one explicit list of passes, run in order, each switchable.
//!
//! ```text
//! cleanup              CSE + DCE of the lowered module
//! reorder-linear       egg rewriting of linear-operator chains, cost-based      (--no-reorder)
//! cleanup
//! materialize-compact  per-(node, relation) rows for endpoint-only values       (--no-compact)
//! cleanup
//! fuse                 group instructions into kernels                          (--no-fuse)
//! lower-to-plan        one GEMM or traversal kernel per group, buffers, layouts
//! choose-schedules     node- vs edge-parallel traversals
//! assign-slots         buffer reuse by lifetime
//! ```
//!
//! [`compile`] runs the whole list, or stops after a named pass (`pigeon dump --after`), and
//! returns the module and plan at that point with every pass's report.

use crate::{
    cleanup, fuse, lower_plan, materialize_compact, reorder_linear, schedule, Options, PassError,
    PassInfo,
};
use pigeon_ir::plan::Plan;
use pigeon_ir::{GraphStats, Module};

/// The pipeline, in order (`cleanup` runs after each rewriting pass as well).
pub const PIPELINE: &[PassInfo] = &[
    PassInfo { name: "cleanup", summary: "common-subexpression and dead-code elimination" },
    PassInfo {
        name: "reorder-linear",
        summary: "reorder linear operators with egg, by graph-aware cost",
    },
    PassInfo {
        name: "materialize-compact",
        summary: "compute endpoint-only edge values per (node, relation)",
    },
    PassInfo { name: "fuse", summary: "group instructions into GEMM and traversal kernels" },
    PassInfo { name: "lower-to-plan", summary: "one kernel per group; buffers and layouts" },
    PassInfo { name: "choose-schedules", summary: "node-parallel or edge-parallel traversals" },
    PassInfo { name: "assign-slots", summary: "share temp buffers with disjoint lifetimes" },
];

/// What the pipeline produced, up to where it stopped.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The inter-operator module after the last inter-level pass that ran.
    pub module: Module,
    /// The kernel plan, when the pipeline got as far as `lower-to-plan`.
    pub plan: Option<Plan>,
    /// `(pass, report)` for each pass that ran, in order.
    pub reports: Vec<(&'static str, String)>,
}

/// Whether `name` is a pass of the pipeline.
pub fn check_pass_name(name: &str) -> Result<(), PassError> {
    if PIPELINE.iter().any(|p| p.name == name) {
        Ok(())
    } else {
        let names: Vec<&str> = PIPELINE.iter().map(|p| p.name).collect();
        Err(PassError::UnknownPass { name: name.to_string(), pipeline: names.join(", ") })
    }
}

/// `module` when it verifies, otherwise an internal error of `pass` listing the violations.
pub(crate) fn verified(module: Module, pass: &'static str) -> Result<Module, PassError> {
    pigeon_ir::verify(&module).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        PassError::Internal { pass, message: list.join("; ") }
    })?;
    Ok(module)
}

fn verified_plan(plan: Plan, pass: &'static str) -> Result<Plan, PassError> {
    pigeon_ir::plan_verify::verify_plan(&plan).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        PassError::Internal { pass, message: list.join("; ") }
    })?;
    Ok(plan)
}

/// Runs the pipeline on `module` for a graph of sizes `stats`, stopping after pass `after`
/// (its last occurrence for `cleanup`) when given. Every intermediate result is verified.
pub fn compile(
    module: &Module,
    stats: &GraphStats,
    options: &Options,
    after: Option<&str>,
) -> Result<Compiled, PassError> {
    if let Some(name) = after {
        check_pass_name(name)?;
    }
    let stop = |name: &str| after == Some(name);
    let mut out = Compiled { module: module.clone(), plan: None, reports: Vec::new() };

    out.module = verified(cleanup::cleanup(&out.module), "cleanup")?;
    out.reports.push(("cleanup", format!("{} instructions", out.module.insts.len())));
    if options.reorder {
        let (m, report) = reorder_linear::reorder_linear(
            &out.module,
            stats,
            &reorder_linear::ReorderLimits::default(),
        )?;
        out.module = verified(cleanup::cleanup(&verified(m, "reorder-linear")?), "cleanup")?;
        out.reports.push(("reorder-linear", report.to_string()));
    }
    if stop("reorder-linear") {
        return Ok(out);
    }
    if options.compact {
        let (m, report) = materialize_compact::materialize_compact(&out.module, stats);
        out.module = verified(cleanup::cleanup(&verified(m, "materialize-compact")?), "cleanup")?;
        out.reports.push(("materialize-compact", report.to_string()));
    }
    if stop("materialize-compact") || stop("cleanup") {
        return Ok(out);
    }
    let fusion = fuse::fuse(&out.module, options.fuse);
    out.reports.push(("fuse", fusion.to_string()));
    if stop("fuse") {
        return Ok(out);
    }
    let mut plan =
        verified_plan(lower_plan::lower_to_plan(&out.module, &fusion, stats)?, "lower-to-plan")?;
    if stop("lower-to-plan") {
        out.plan = Some(plan);
        return Ok(out);
    }
    schedule::choose_schedules(&mut plan, stats);
    let mut plan = verified_plan(plan, "choose-schedules")?;
    if stop("choose-schedules") {
        out.plan = Some(plan);
        return Ok(out);
    }
    let slots = schedule::assign_slots(&mut plan, stats);
    out.reports.push(("assign-slots", slots.to_string()));
    out.plan = Some(verified_plan(plan, "assign-slots")?);
    Ok(out)
}
