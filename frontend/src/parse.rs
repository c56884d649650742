//! Parsing: lexes the file, splits it at each `model` keyword, and parses every model with the
//! lalrpop grammar, turning parse errors into "expected `;`, found `}`" diagnostics (one per
//! malformed model).

use crate::ast::{File, Span};
use crate::diag::{Diagnostic, Diagnostics};
use crate::lexer::{lex, Spanned, Tok};
use lalrpop_util::ParseError;

lalrpop_util::lalrpop_mod!(
    #[allow(clippy::all, unused_parens, missing_docs)]
    grammar
);

/// Parses a whole file, or returns every lexical error and the first parse error of each model.
pub fn parse_text(text: &str) -> Result<File, Diagnostics> {
    let (toks, mut diags) = lex(text);
    diags.extend(too_long(&toks));
    let lex_errors: Vec<Span> = diags.iter().map(|d| d.span).collect();
    let starts: Vec<usize> =
        toks.iter().enumerate().filter(|(_, t)| t.1 == Tok::Model).map(|(i, _)| i).collect();
    let first = starts.first().copied().unwrap_or(toks.len());
    if let Some((l, tok, r)) = toks.get(..first).and_then(|s| s.first()) {
        diags.push(
            Diagnostic::error(format!("expected `model`, found {tok}"), Span::new(*l, *r))
                .with_label("a file holds only models"),
        );
    }
    let mut models = Vec::new();
    for (k, &start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(toks.len());
        let chunk = &toks[start..end];
        let lo = chunk.first().map_or(0, |t| t.0);
        let hi = toks.get(end).map_or(text.len(), |t| t.0);
        if lex_errors.iter().any(|s| s.start >= lo && s.start < hi) {
            // A bad character or an overlong statement already explains what is wrong with
            // this model (and an overlong statement might build a tree too deep to walk).
            continue;
        }
        match grammar::ModelParser::new().parse(chunk.iter().cloned().map(Ok)) {
            Ok(model) => models.push(model),
            Err(err) => diags.push(parse_error(text, chunk, toks.get(end), err)),
        }
    }
    if diags.is_empty() {
        Ok(File { models })
    } else {
        let mut diags = Diagnostics(diags);
        diags.sort_dedup();
        Err(diags)
    }
}

/// The most tokens one statement may hold. This bounds the depth of expression trees, which the
/// checker and the lowering walk recursively (a real statement holds a few dozen tokens).
const MAX_STMT_TOKENS: usize = 1000;

/// An error for each statement longer than [`MAX_STMT_TOKENS`].
fn too_long(toks: &[Spanned]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, (l, t, _)) in toks.iter().enumerate() {
        if matches!(t, Tok::Semi | Tok::LBrace | Tok::RBrace) {
            start = i + 1;
        } else if i - start == MAX_STMT_TOKENS {
            let at = toks.get(start).map_or(*l, |t| t.0);
            out.push(
                Diagnostic::error(
                    format!("statement too long (more than {MAX_STMT_TOKENS} tokens)"),
                    Span::new(at, at),
                )
                .with_label("split it into several definitions"),
            );
        }
    }
    out
}

/// Turns a lalrpop error into a diagnostic. `next` is the token after the chunk (the next
/// `model`), which is what the parser really found when it reports the end of its input.
fn parse_error(
    text: &str,
    chunk: &[Spanned],
    next: Option<&Spanned>,
    err: ParseError<usize, Tok, std::convert::Infallible>,
) -> Diagnostic {
    let (found, span, expected) = match err {
        ParseError::UnrecognizedToken { token: (l, tok, r), expected } => {
            (tok.to_string(), Span::new(l, r), expected)
        }
        ParseError::UnrecognizedEof { location, expected } => match next {
            Some((l, tok, r)) => (tok.to_string(), Span::new(*l, *r), expected),
            None => ("end of file".to_string(), Span::new(location, location), expected),
        },
        ParseError::ExtraToken { token: (l, tok, r) } => {
            (tok.to_string(), Span::new(l, r), vec!["\"}\"".to_string()])
        }
        ParseError::InvalidToken { location } => {
            ("an invalid token".to_string(), Span::new(location, location), Vec::new())
        }
        ParseError::User { error } => match error {},
    };
    let wanted = describe_expected(&expected);
    let message = format!("expected {wanted}, found {found}");
    // A missing `;` at the end of a line is best shown right after the previous token.
    if expected.iter().any(|e| e == "\";\"") {
        if let Some(prev) = chunk.iter().rev().find(|t| t.2 <= span.start) {
            if text.get(prev.2..span.start).is_some_and(|gap| gap.contains('\n')) {
                let at = Span::new(prev.2, prev.2);
                return Diagnostic::error(message, at)
                    .with_label(format!("expected {wanted} here"));
            }
        }
    }
    Diagnostic::error(message, span).with_label(format!("expected {wanted}"))
}

/// "`;` or an operator", "a name", "an expression", from lalrpop's list of terminal names.
fn describe_expected(expected: &[String]) -> String {
    let has = |t: &str| expected.iter().any(|e| e == t);
    let mut parts: Vec<String> = Vec::new();
    let mut skip: Vec<&str> = Vec::new();
    let expr_start = ["Ident", "Int", "Float", "\"(\"", "\"-\"", "\"src\"", "\"dst\""];
    if expr_start.iter().all(|t| has(t)) {
        skip.extend(expr_start);
    }
    let stmt_start = ["\"input\"", "\"weight\"", "\"edge\"", "\"node\"", "\"layer\"", "\"output\""];
    if stmt_start.iter().all(|t| has(t)) {
        skip.extend(stmt_start);
    }
    let ops = ["\"+\"", "\"-\"", "\"*\"", "\"/\"", "\"@\""];
    let has_ops = ops.iter().filter(|t| has(t)).count() >= 2;
    if has_ops {
        // After an operand, `(`, `[` and `.` would continue a name; they are not worth listing.
        skip.extend(ops);
        skip.extend(["\"(\"", "\"[\"", "\".\""]);
    }
    if skip.contains(&"\"input\"") {
        parts.push("a statement".into());
    }
    if skip.contains(&"Ident") {
        parts.push("an expression".into());
    }
    for e in expected {
        if skip.contains(&e.as_str()) {
            continue;
        }
        parts.push(match e.as_str() {
            "Ident" => "a name".to_string(),
            "Int" => "an integer".to_string(),
            "Float" => "a number".to_string(),
            quoted => format!("`{}`", quoted.trim_matches('"')),
        });
    }
    if has_ops {
        parts.push("an operator".into());
    }
    match parts.len() {
        0 => "something else".to_string(),
        1 => parts.remove(0),
        n => format!("{} or {}", parts[..n - 1].join(", "), parts[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(src: &str, expect: &str) {
        let out = match parse_text(src) {
            Ok(file) => crate::dump::ast_to_string(&file),
            Err(d) => d.render("t.rgnn", src),
        };
        assert_eq!(out.trim(), expect.trim(), "\n{out}");
    }

    #[test]
    fn missing_semicolon_points_after_the_previous_token() {
        check(
            "model m() {\n    input h: node[4]\n    output h;\n}",
            r#"
error: expected `;`, found `output`
  --> t.rgnn:2:21
   |
 2 |     input h: node[4]
   |                     ^ expected `;` here"#,
        );
    }

    #[test]
    fn one_error_per_model_and_tokens_before_the_first_model() {
        check(
            "x model a { node y = 1 + ; } model b { output } model c {",
            r#"
error: expected `model`, found `x`
  --> t.rgnn:1:1
   |
 1 | x model a { node y = 1 + ; } model b { output } model c {
   | ^ a file holds only models

error: expected an expression, found `;`
  --> t.rgnn:1:26
   |
 1 | x model a { node y = 1 + ; } model b { output } model c {
   |                          ^ expected an expression

error: expected a name, found `}`
  --> t.rgnn:1:47
   |
 1 | x model a { node y = 1 + ; } model b { output } model c {
   |                                               ^ expected a name

error: expected a statement or `}`, found end of file
  --> t.rgnn:1:58
   |
 1 | x model a { node y = 1 + ; } model b { output } model c {
   |                                                          ^ expected a statement or `}`"#,
        );
    }

    #[test]
    fn unfinished_model_reports_the_next_model() {
        check(
            "model a { node y = relu(h) model b {}",
            r#"
error: expected `;` or an operator, found `model`
  --> t.rgnn:1:28
   |
 1 | model a { node y = relu(h) model b {}
   |                            ^^^^^ expected `;` or an operator"#,
        );
    }
}
