//! Diagnostics: spanned errors collected by every stage and rendered with the source line and a
//! caret under the offending text.

use crate::ast::Span;
use std::fmt;

/// How bad a diagnostic is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The program is rejected.
    Error,
    /// The program is accepted but probably not what was meant.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One message about the source, pointing at a span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The headline, `unknown name `hh``.
    pub message: String,
    /// Where in the source (byte offsets).
    pub span: Span,
    /// Text printed after the caret(s), if any.
    pub label: Option<String>,
    /// Extra lines printed as `= note: ...`.
    pub notes: Vec<String>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(message: impl Into<String>, span: Span) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span,
            label: None,
            notes: Vec::new(),
        }
    }
    /// Sets the label printed after the caret.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
    /// Adds a note line.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Renders this diagnostic against `source`, naming the file `file_name`.
    pub fn render(&self, file_name: &str, source: &str) -> String {
        let (line_no, line_start) = line_of(source, self.span.start);
        let line_end = source[line_start..].find('\n').map_or(source.len(), |i| line_start + i);
        let line = source[line_start..line_end].trim_end_matches('\r');
        let start = self.span.start.min(line_start + line.len());
        let col = source[line_start..start].chars().count() + 1;
        let end = self.span.end.clamp(start, line_start + line.len());
        let width = source[start..end].chars().count().max(1);
        let num = (line_no + 1).to_string();
        let pad = " ".repeat(num.len() + 1);
        // Keep tabs in the caret line so the caret lines up with the source line as shown.
        let lead: String =
            source[line_start..start].chars().map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        let mut out = format!("{}: {}\n", self.severity, self.message);
        out += &format!("{pad}--> {file_name}:{}:{col}\n", line_no + 1);
        out += &format!("{pad} |\n");
        out += &format!(" {num} | {line}\n");
        out += &format!("{pad} | {lead}{}", "^".repeat(width));
        if let Some(label) = &self.label {
            out += " ";
            out += label;
        }
        out += "\n";
        for note in &self.notes {
            out += &format!("{pad} = note: {note}\n");
        }
        out
    }
}

/// The 0-based line number containing byte `offset` and the offset where that line starts.
fn line_of(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count();
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, start)
}

/// The 1-based `line:column` (column in characters) of byte `offset` in `source`.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let (line, start) = line_of(source, offset);
    let end = offset.min(source.len()).max(start);
    let col = source.get(start..end).map_or(0, |s| s.chars().count());
    (line + 1, col + 1)
}

/// A list of diagnostics, the error type of every frontend entry point.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }
    /// Sorts by position and drops exact duplicates (the same message at the same span, which
    /// happens when a model is checked both alone and through a layer).
    pub fn sort_dedup(&mut self) {
        self.0.sort_by_key(|d| (d.span.start, d.span.end));
        let mut seen = std::collections::HashSet::new();
        self.0.retain(|d| seen.insert((d.span, d.message.clone())));
    }
    /// Renders every diagnostic against `source`, separated by blank lines.
    pub fn render(&self, file_name: &str, source: &str) -> String {
        let parts: Vec<String> = self.0.iter().map(|d| d.render(file_name, source)).collect();
        parts.join("\n")
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {} (at bytes {})", d.severity, d.message, d.span)?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The known name closest to `name` by edit distance, when close enough to be a likely typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(source: &str, diag: Diagnostic, expect: &str) {
        assert_eq!(diag.render("x.rgnn", source), expect.trim_start_matches('\n'));
    }

    #[test]
    fn renders_like_the_language_reference() {
        let src = "\n\n\n\n\n\n    edge m = src.hh @ W[relation];\n";
        let at = src.find("hh").unwrap_or(0);
        let d = Diagnostic::error("unknown name `hh`", Span::new(at, at + 2))
            .with_label("not an input or node value of `rgcn`");
        check(
            src,
            d,
            r#"
error: unknown name `hh`
  --> x.rgnn:7:18
   |
 7 |     edge m = src.hh @ W[relation];
   |                  ^^ not an input or node value of `rgcn`
"#,
        );
    }

    #[test]
    fn empty_span_at_end_of_file_and_notes() {
        let d = Diagnostic::error("expected `}`", Span::new(9, 9)).with_note("a note");
        check("model a {", d, "error: expected `}`\n  --> x.rgnn:1:10\n   |\n 1 | model a {\n   |          ^\n   = note: a note\n");
    }

    #[test]
    fn columns_count_characters_and_wide_line_numbers() {
        let src = "\n".repeat(11) + "é é x";
        let at = src.len() - 1;
        let d = Diagnostic::error("m", Span::new(at, at + 1));
        check(&src, d, "error: m\n   --> x.rgnn:12:5\n    |\n 12 | é é x\n    |     ^\n");
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("relux", ["relu", "gelu", "tanh"]), Some("relu"));
        assert_eq!(suggest("q", ["relu"]), None);
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
