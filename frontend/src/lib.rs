//! pigeon's model language: lexer, lalrpop grammar, AST with spans, name/domain/shape checking,
//! diagnostics, and lowering to the inter-operator IR ([`pigeon_ir::Module`]).
//!
//! The pipeline is `parse` (lexer + grammar, [`parse()`]) -> `check` (names and domains, per
//! model, parameter-independent) -> `lower` (one instantiated model, dimensions evaluated, layers
//! inlined, every instruction typed by [`pigeon_ir::infer::infer_type`], shape errors reported).

pub mod ast;
mod check;
mod check_expr;
pub mod diag;
mod dims;
mod dump;
mod funcs;
mod lexer;
mod lower;
mod lower_expr;
mod parse;

pub use diag::{Diagnostic, Diagnostics, Severity};
pub use dump::ast_to_string;

/// A source file: its name (as shown in diagnostics) and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// The name shown in diagnostics (`examples/rgcn.rgnn`).
    pub name: String,
    /// The whole text.
    pub text: String,
}

/// Parses `src` into an AST, or returns every lexical error and the first syntax error of each
/// model.
pub fn parse(src: &SourceFile) -> Result<ast::File, Diagnostics> {
    parse::parse_text(&src.text)
}

/// Checks every model: names and domains always, and dimensions and shapes of each model whose
/// parameters all have defaults (models with required parameters are checked through the
/// layers that instantiate them). Returns every error found, sorted by position.
pub fn check(src: &SourceFile) -> Result<(), Diagnostics> {
    let file = parse(src)?;
    let mut diags = check::check_file(&file, &src.text);
    if diags.is_empty() {
        for (i, model) in file.models.iter().enumerate() {
            if model.params.iter().all(|p| p.default.is_some()) {
                if let Err(errs) = lower::lower(&file, i, &[]) {
                    diags.extend(errs);
                }
            }
        }
    }
    finish(diags)
}

/// Lowers one model (by name, or the last model in the file) with parameter overrides. The
/// whole file is checked first.
pub fn compile(
    src: &SourceFile,
    model: Option<&str>,
    params: &[(String, i64)],
) -> Result<pigeon_ir::Module, Diagnostics> {
    let file = parse(src)?;
    finish(check::check_file(&file, &src.text))?;
    let idx = match model {
        Some(name) => file.models.iter().position(|m| m.name.name == name).ok_or_else(|| {
            let names: Vec<&str> = file.models.iter().map(|m| m.name.name.as_str()).collect();
            let mut d = Diagnostic::error(
                format!("no model named `{name}` in {}", src.name),
                ast::Span::default(),
            );
            d = d.with_note(format!("the file defines {}", quoted(&names)));
            Diagnostics(vec![d])
        })?,
        None => file.models.len().checked_sub(1).ok_or_else(|| {
            Diagnostics(vec![Diagnostic::error(
                format!("{} defines no model", src.name),
                ast::Span::default(),
            )])
        })?,
    };
    let module = lower::lower(&file, idx, params).map_err(|d| {
        let mut d = Diagnostics(d);
        d.sort_dedup();
        d
    })?;
    // The lowering types every instruction with `infer_type`; the verifier is a safety net.
    pigeon_ir::verify(&module).map_err(|errs| {
        let span = file.models[idx].name.span;
        Diagnostics(
            errs.iter()
                .map(|e| {
                    Diagnostic::error(
                        format!("internal error: the lowering produced invalid IR: {e}"),
                        span,
                    )
                })
                .collect(),
        )
    })?;
    Ok(module)
}

/// The names of the models in `src`, in source order.
pub fn model_names(src: &SourceFile) -> Result<Vec<String>, Diagnostics> {
    Ok(parse(src)?.models.into_iter().map(|m| m.name.name).collect())
}

/// The stems of the `.rgnn` files directly in `dir`, sorted (`examples/` is the model zoo:
/// tests that run every zoo model list it with this, so a new model file is picked up).
pub fn model_files(dir: &std::path::Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rgnn") {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                names.push(stem.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}

fn finish(diags: Vec<Diagnostic>) -> Result<(), Diagnostics> {
    let mut diags = Diagnostics(diags);
    diags.sort_dedup();
    if diags.has_errors() {
        Err(diags)
    } else {
        Ok(())
    }
}

fn quoted(names: &[&str]) -> String {
    if names.is_empty() {
        return "no models".to_string();
    }
    let q: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    q.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, model: Option<&str>, expect: &str) {
        let src = SourceFile { name: "t.rgnn".into(), text: text.into() };
        let out = match compile(&src, model, &[]) {
            Ok(m) => format!("{} {:?}", m.name, m.outputs.iter().map(|o| &o.0).collect::<Vec<_>>()),
            Err(d) => d.to_string(),
        };
        assert_eq!(out, expect);
    }

    const TWO: &str = "model a(d = 2) { input h: node[d]; output h; }\nmodel b(k) { input x: edge[k]; output x; }";

    #[test]
    fn model_selection() {
        check(TWO, Some("a"), r#"a ["h"]"#);
        check(TWO, Some("c"), "error: no model named `c` in t.rgnn (at bytes 0..0)");
        check(TWO, None, "error: parameter `k` of model `b` has no default (at bytes 55..56)");
        check("// nothing", None, "error: t.rgnn defines no model (at bytes 0..0)");
        let src = SourceFile { name: "t.rgnn".into(), text: TWO.into() };
        assert_eq!(model_names(&src), Ok(vec!["a".to_string(), "b".to_string()]));
        let m = compile(&src, Some("b"), &[("k".into(), 3)]).map(|m| m.params);
        assert_eq!(m, Ok(vec![("k".to_string(), 3)]));
        // `b` has no default, so `check` only checks its names.
        assert_eq!(check_src(TWO), Ok(()));
    }

    fn check_src(text: &str) -> Result<(), Diagnostics> {
        crate::check(&SourceFile { name: "t".into(), text: text.into() })
    }
}
