//! A small indenting writer into a `String`: generated code is written line by line through it,
//! never as large `format!` blocks (STYLE.md, habit 9).

/// An indenting line writer.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
    indent: usize,
}

impl Writer {
    /// An empty writer at indent 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes one line at the current indent (an empty `line` writes an empty line).
    pub fn line(&mut self, line: impl AsRef<str>) {
        let line = line.as_ref();
        if !line.is_empty() {
            for _ in 0..self.indent {
                self.out.push_str("    ");
            }
            self.out.push_str(line);
        }
        self.out.push('\n');
    }

    /// An empty line.
    pub fn blank(&mut self) {
        self.out.push('\n');
    }

    /// Writes `head {` and indents.
    pub fn open(&mut self, head: impl AsRef<str>) {
        self.line(format!("{} {{", head.as_ref()));
        self.indent += 1;
    }

    /// Dedents and writes `}` followed by `tail` (for example `;`).
    pub fn close_with(&mut self, tail: &str) {
        self.indent = self.indent.saturating_sub(1);
        self.line(format!("}}{tail}"));
    }

    /// Dedents and writes `}`.
    pub fn close(&mut self) {
        self.close_with("");
    }

    /// Writes `head {`, the body written by `body` one level deeper, and `}`.
    pub fn block<E>(
        &mut self,
        head: impl AsRef<str>,
        body: impl FnOnce(&mut Self) -> Result<(), E>,
    ) -> Result<(), E> {
        self.open(head);
        body(self)?;
        self.close();
        Ok(())
    }

    /// Appends fixed multi-line text (a `.cuh` helper) verbatim, ignoring the indent.
    pub fn raw(&mut self, text: &str) {
        self.out.push_str(text);
        if !text.ends_with('\n') {
            self.out.push('\n');
        }
    }

    /// The text written so far.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::Writer;

    #[test]
    fn indents_blocks_and_keeps_empty_lines_empty() {
        let mut w = Writer::new();
        w.line("// head");
        let r: Result<(), ()> = w.block("if (x)", |w| {
            w.line("y = 1;");
            w.blank();
            w.open("for (;;)");
            w.line("break;");
            w.close_with(";");
            Ok(())
        });
        assert_eq!(r, Ok(()));
        assert_eq!(
            w.finish(),
            "// head\nif (x) {\n    y = 1;\n\n    for (;;) {\n        break;\n    };\n}\n"
        );
    }
}
