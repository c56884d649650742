//! The hand-written lexer: source text to tokens with byte spans, reporting bad characters and
//! malformed numbers as diagnostics while carrying on.

use crate::ast::Span;
use crate::diag::Diagnostic;
use std::fmt;

/// A token. Keywords and punctuation are unit variants; the parser names them by their text.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// `model`
    Model,
    /// `input`
    Input,
    /// `weight`
    Weight,
    /// `edge`
    Edge,
    /// `node`
    Node,
    /// `layer`
    Layer,
    /// `output`
    Output,
    /// `src`
    Src,
    /// `dst`
    Dst,
    /// `relation`
    Relation,
    /// `ntype`
    Ntype,
    /// An identifier.
    Ident(String),
    /// An integer literal.
    Int(i64),
    /// A decimal literal.
    Float(f64),
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `,`
    Comma,
    /// `;`
    Semi,
    /// `:`
    Colon,
    /// `.`
    Dot,
    /// `=`
    Eq,
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `*`
    Star,
    /// `/`
    Slash,
    /// `@`
    At,
}

const KEYWORDS: &[(&str, Tok)] = &[
    ("model", Tok::Model),
    ("input", Tok::Input),
    ("weight", Tok::Weight),
    ("edge", Tok::Edge),
    ("node", Tok::Node),
    ("layer", Tok::Layer),
    ("output", Tok::Output),
    ("src", Tok::Src),
    ("dst", Tok::Dst),
    ("relation", Tok::Relation),
    ("ntype", Tok::Ntype),
];

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Tok::Ident(name) => return write!(f, "`{name}`"),
            Tok::Int(v) => return write!(f, "`{v}`"),
            Tok::Float(v) => return write!(f, "`{v}`"),
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Comma => ",",
            Tok::Semi => ";",
            Tok::Colon => ":",
            Tok::Dot => ".",
            Tok::Eq => "=",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::At => "@",
            kw => KEYWORDS.iter().find(|(_, t)| t == kw).map(|(s, _)| *s).unwrap_or("?"),
        };
        write!(f, "`{text}`")
    }
}

/// A token with its span.
pub type Spanned = (usize, Tok, usize);

/// Splits `text` into tokens, skipping whitespace and comments. Characters that start no token
/// and malformed numbers are reported in the returned diagnostics and skipped.
pub fn lex(text: &str) -> (Vec<Spanned>, Vec<Diagnostic>) {
    let mut toks = Vec::new();
    let mut diags = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &text[start..i];
            let tok = KEYWORDS
                .iter()
                .find(|(k, _)| *k == word)
                .map(|(_, t)| t.clone())
                .unwrap_or_else(|| Tok::Ident(word.to_string()));
            toks.push((start, tok, i));
        } else if c.is_ascii_digit() {
            let start = i;
            let (tok, end) = lex_number(text, start);
            i = end;
            match tok {
                Ok(tok) => toks.push((start, tok, end)),
                Err(msg) => diags.push(Diagnostic::error(msg, Span::new(start, end))),
            }
        } else if let Some(tok) = punct(c) {
            toks.push((i, tok, i + 1));
            i += 1;
        } else {
            // Skip the whole (possibly multi-byte) character.
            let ch = text[i..].chars().next().unwrap_or('?');
            let end = i + ch.len_utf8();
            diags.push(
                Diagnostic::error(
                    format!("unexpected character `{}`", ch.escape_default()),
                    Span::new(i, end),
                )
                .with_label("not part of any token"),
            );
            i = end;
        }
    }
    (toks, diags)
}

fn punct(c: u8) -> Option<Tok> {
    Some(match c {
        b'(' => Tok::LParen,
        b')' => Tok::RParen,
        b'{' => Tok::LBrace,
        b'}' => Tok::RBrace,
        b'[' => Tok::LBracket,
        b']' => Tok::RBracket,
        b',' => Tok::Comma,
        b';' => Tok::Semi,
        b':' => Tok::Colon,
        b'.' => Tok::Dot,
        b'=' => Tok::Eq,
        b'+' => Tok::Plus,
        b'-' => Tok::Minus,
        b'*' => Tok::Star,
        b'/' => Tok::Slash,
        b'@' => Tok::At,
        _ => return None,
    })
}

/// Lexes the number starting at `start`: `64`, `0.2`, `1e-3`, `2.5E+4`. Returns the token (or a
/// message) and the end offset. A number runs on through any letters and digits glued to it, so
/// that `12ab` is one bad number rather than a number and a name.
fn lex_number(text: &str, start: usize) -> (Result<Tok, String>, usize) {
    let bytes = text.as_bytes();
    let digits = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = digits(start);
    let mut is_float = false;
    if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i = digits(i + 1);
        is_float = true;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if bytes.get(j).is_some_and(u8::is_ascii_digit) {
            i = digits(j);
            is_float = true;
        }
    }
    let mut end = i;
    while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
        end += 1;
    }
    let lit = &text[start..end];
    if end != i {
        return (Err(format!("malformed number `{lit}`")), end);
    }
    let tok = if is_float {
        lit.parse::<f64>().map(Tok::Float).map_err(|_| format!("malformed number `{lit}`"))
    } else {
        lit.parse::<i64>().map(Tok::Int).map_err(|_| format!("integer `{lit}` is too large"))
    };
    (tok, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(src: &str, expect: &str) {
        let (toks, diags) = lex(src);
        let mut out: Vec<String> = toks.iter().map(|(s, t, e)| format!("{s}..{e} {t}")).collect();
        out.extend(diags.iter().map(|d| format!("{} error: {}", d.span, d.message)));
        assert_eq!(out.join("\n"), expect.trim());
    }

    #[test]
    fn keywords_names_and_punctuation() {
        check(
            "edge m = src.h @ W[relation]; // c",
            r#"
0..4 `edge`
5..6 `m`
7..8 `=`
9..12 `src`
12..13 `.`
13..14 `h`
15..16 `@`
17..18 `W`
18..19 `[`
19..27 `relation`
27..28 `]`
28..29 `;`"#,
        );
    }

    #[test]
    fn numbers() {
        check(
            "64 0.2 1e-3 2.5E+4 1.",
            "0..2 `64`\n3..6 `0.2`\n7..11 `0.001`\n12..18 `25000`\n19..20 `1`\n20..21 `.`",
        );
    }

    #[test]
    fn bad_input_is_reported_and_skipped() {
        check("a $ 12ab 99999999999999999999 é", "0..1 `a`\n2..3 error: unexpected character `$`\n4..8 error: malformed number `12ab`\n9..29 error: integer `99999999999999999999` is too large\n30..32 error: unexpected character `\\u{e9}`");
    }
}
