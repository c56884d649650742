//! A readable, indented dump of the AST (`pigeon dump --stage ast`), one node per line with its
//! byte span.

use crate::ast::*;
use std::fmt::Write;

/// Renders `file` as an indented tree.
pub fn ast_to_string(file: &File) -> String {
    let mut out = String::new();
    for model in &file.models {
        line(&mut out, 0, &format!("model {}", model.name.name), model.span);
        for p in &model.params {
            let text = match p.default {
                Some((v, _)) => format!("param {} = {v}", p.name.name),
                None => format!("param {}", p.name.name),
            };
            line(&mut out, 1, &text, p.span);
        }
        for stmt in &model.stmts {
            stmt_to(&mut out, stmt);
        }
    }
    out
}

fn line(out: &mut String, depth: usize, text: &str, span: Span) {
    let _ = writeln!(out, "{}{text} @{span}", "  ".repeat(depth));
}

fn stmt_to(out: &mut String, stmt: &Stmt) {
    match &stmt.kind {
        StmtKind::Input { name, rows, shape } => {
            let shape = if shape.is_empty() { String::new() } else { dims(shape) };
            line(out, 1, &format!("input {}: {rows}{shape}", name.name), stmt.span);
        }
        StmtKind::Weight { name, slicing, per_node, shape, init } => {
            let sl = match slicing.0 {
                WeightSlicing::Shared => "",
                WeightSlicing::Relation => "[relation]",
                WeightSlicing::NodeType => "[ntype]",
            };
            let init = init.as_ref().map_or(String::new(), |i| format!(" = {}", i.name));
            let shape = match (per_node, shape.is_empty()) {
                (false, _) => dims(shape),
                (true, true) => "node".to_string(),
                (true, false) => format!("node{}", dims(shape)),
            };
            line(out, 1, &format!("weight {}{sl}: {shape}{init}", name.name), stmt.span);
        }
        StmtKind::Def { rows, name, value } => {
            line(out, 1, &format!("{rows} {}", name.name), stmt.span);
            expr_to(out, 2, value);
        }
        StmtKind::Layer { name, model, args, inputs } => {
            let args: Vec<String> =
                args.iter().map(|a| format!("{} = {}", a.name.name, dim(&a.value, true))).collect();
            let inputs: Vec<String> = inputs.iter().map(|r| r.to_string()).collect();
            let text = format!(
                "layer {} = {}({})({})",
                name.name,
                model.name,
                args.join(", "),
                inputs.join(", ")
            );
            line(out, 1, &text, stmt.span);
        }
        StmtKind::Output { values } => {
            let values: Vec<String> = values.iter().map(|r| r.to_string()).collect();
            line(out, 1, &format!("output {}", values.join(", ")), stmt.span);
        }
    }
}

fn expr_to(out: &mut String, depth: usize, e: &Expr) {
    match &e.kind {
        ExprKind::Int(v) => line(out, depth, &format!("int {v}"), e.span),
        ExprKind::Float(v) => line(out, depth, &format!("float {v:?}"), e.span),
        ExprKind::Ref(r) => line(out, depth, &format!("ref {r}"), e.span),
        ExprKind::Endpoint(end, r) => line(out, depth, &format!("{end}.{r}"), e.span),
        ExprKind::Slice { weight, sel, .. } => {
            line(out, depth, &format!("slice {}[{sel}]", weight.name), e.span)
        }
        ExprKind::TableSlice { end, table, sel, .. } => {
            line(out, depth, &format!("{end}.{}[{sel}]", table.name), e.span)
        }
        ExprKind::Neg(x) => {
            line(out, depth, "neg", e.span);
            expr_to(out, depth + 1, x);
        }
        ExprKind::Binary(op, a, b) => {
            line(out, depth, &format!("binary {}", op.symbol()), e.span);
            expr_to(out, depth + 1, a);
            expr_to(out, depth + 1, b);
        }
        ExprKind::Call { func, args } => {
            line(out, depth, &format!("call {}", func.name), e.span);
            for arg in args {
                match arg {
                    Arg::Value(x) => expr_to(out, depth + 1, x),
                    Arg::Shape(d, span) => {
                        line(out, depth + 1, &format!("shape {}", dims(d)), *span)
                    }
                }
            }
        }
    }
}

fn dims(ds: &[DimExpr]) -> String {
    let parts: Vec<String> = ds.iter().map(|d| dim(d, true)).collect();
    format!("[{}]", parts.join(", "))
}

/// A dimension expression, with parentheses around every nested operation.
fn dim(d: &DimExpr, top: bool) -> String {
    match &d.kind {
        DimKind::Int(v) => v.to_string(),
        DimKind::Param(p) => p.name.clone(),
        DimKind::Binary(op, a, b) => {
            let s = format!("{} {} {}", dim(a, false), op.symbol(), dim(b, false));
            if top {
                s
            } else {
                format!("({s})")
            }
        }
    }
}

/// A dimension expression as text, for messages.
pub(crate) fn dim_text(d: &DimExpr) -> String {
    dim(d, true)
}
