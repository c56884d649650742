//! The plan text of a traversal's statements, for the comments of the generated code, taken
//! from `pigeon_ir`'s plan printer (one line per statement).

use pigeon_ir::plan::{Kernel, Plan, Schedule, Traversal};
use pigeon_ir::print_plan;

/// `rN = level op : shape` for every statement of `t`, in order.
pub(crate) fn stmt_texts(t: &Traversal) -> Vec<String> {
    let mut plan = Plan::default();
    plan.kernels.push(Kernel::Traversal(t.clone()));
    let text = print_plan(&plan);
    let lines: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("    r"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    if lines.len() == t.body.len() {
        lines
    } else {
        (0..t.body.len()).map(|i| format!("r{i}")).collect()
    }
}

/// `rows nodes`, `node_parallel`, `edge_parallel`.
pub(crate) fn schedule(s: Schedule) -> String {
    let mut plan = Plan::default();
    plan.kernels.push(Kernel::Traversal(Traversal { schedule: s, body: Vec::new() }));
    let text = print_plan(&plan);
    text.lines()
        .find_map(|l| l.split_once("= traversal ").map(|(_, rest)| rest.trim_end_matches(" {")))
        .unwrap_or("")
        .to_string()
}
