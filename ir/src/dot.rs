//! Graphviz output of the inter-operator IR: the data-flow graph of a module, for reading.
//!
//! One node per instruction, labelled with its text-form operator, source name (if any) and
//! type; filled by domain (node values blue, edge values orange, compact rows yellow, weights and
//! other weight-like or shared values green); inputs drawn as `invhouse`, weights as `cylinder`,
//! constants as `ellipse`, everything else as `box`. Each output is a `doubleoctagon` node fed by
//! its value, which gets a double border. Edges run from operand to user and, where an operator
//! has several operands, are labelled with the operand's role (`x`, `w`, `a`, `b`, or a position
//! for concat). The output depends only on the module, so it can be snapshot-tested.

use crate::inter::{Domain, Module, Op};
use crate::text;
use std::collections::HashSet;
use std::fmt::Write;

/// The module as a Graphviz `digraph`.
pub fn to_dot(module: &Module) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&module.name));
    out.push_str("  rankdir=TB;\n");
    out.push_str("  node [fontname=\"monospace\", fontsize=10, style=filled];\n");
    out.push_str("  edge [fontname=\"monospace\", fontsize=9];\n");
    let outputs: HashSet<_> = module.outputs.iter().map(|(_, v)| *v).collect();
    for (v, inst) in module.insts.iter() {
        let mut lines = vec![format!("{v} = {}", text::op(&inst.op))];
        if let Op::Weight(w) = &inst.op {
            if let Some(decl) = module.weights.get(*w) {
                lines.push(format!(
                    "{} {} {}",
                    text::quote(&decl.name),
                    decl.shape,
                    decl.init.name()
                ));
            }
        }
        if let Some(name) = &inst.name {
            lines.push(text::name(name));
        }
        lines.push(inst.ty.to_string());
        let label = lines.iter().map(|l| escape(l)).collect::<Vec<_>>().join("\\n");
        let shape = match inst.op {
            Op::Input { .. } => "invhouse",
            Op::Weight(_) => "cylinder",
            Op::Const(_) => "ellipse",
            _ => "box",
        };
        let border = if outputs.contains(&v) { ", peripheries=2" } else { "" };
        let color = color(inst.ty.domain);
        let _ = writeln!(
            out,
            "  {v} [label=\"{label}\", shape={shape}, fillcolor=\"{color}\"{border}];"
        );
    }
    for (v, inst) in module.insts.iter() {
        let roles = roles(&inst.op);
        for (i, x) in inst.op.operands().iter().enumerate() {
            match roles.get(i) {
                Some(role) => {
                    let _ = writeln!(out, "  {x} -> {v} [label=\"{role}\"];");
                }
                None => {
                    let _ = writeln!(out, "  {x} -> {v};");
                }
            }
        }
    }
    for (i, (name, v)) in module.outputs.iter().enumerate() {
        let label = escape(&format!("output {}", text::quote(name)));
        let _ = writeln!(
            out,
            "  out{i} [label=\"{label}\", shape=doubleoctagon, fillcolor=\"white\"];"
        );
        let _ = writeln!(out, "  {v} -> out{i};");
    }
    out.push_str("}\n");
    out
}

/// Fill colour of a value of `domain`.
fn color(domain: Domain) -> &'static str {
    match domain {
        Domain::Node => "#cfe2ff",
        Domain::Edge => "#ffd8b0",
        Domain::Compact(_) => "#fff3cd",
        Domain::Shared | Domain::Relation | Domain::NodeType => "#d1e7dd",
    }
}

/// Edge labels naming each operand's role, empty for single-operand operators.
fn roles(op: &Op) -> Vec<String> {
    match op {
        Op::Linear { .. } => vec!["x".into(), "w".into()],
        Op::Binary { .. } | Op::Dot { .. } => vec!["a".into(), "b".into()],
        Op::Concat { xs } if xs.len() > 1 => (0..xs.len()).map(|i| i.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// `s` escaped for a double-quoted dot string.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// `s` as a double-quoted dot string.
fn quote(s: &str) -> String {
    format!("\"{}\"", escape(s))
}
