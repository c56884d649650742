//! A small JSON reader for dataset metadata (HGB's `info.dat`): objects, arrays, strings,
//! numbers, `true`, `false`, `null`, and the `NaN` / `Infinity` / `-Infinity` that Python's
//! `json` module writes (IMDB's `info.dat` has them); nesting limited to 64 levels.

use std::path::Path;

use super::parse_error;
use crate::error::Result;

/// A JSON value. Object members keep their file order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// Member `key` of an object.
    pub(crate) fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    /// The members of an object (empty for other values).
    pub(crate) fn members(&self) -> &[(String, Json)] {
        match self {
            Json::Obj(m) => m,
            _ => &[],
        }
    }
    /// The string, if this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }
    /// The number as a non-negative integer, if it is one.
    pub(crate) fn as_index(&self) -> Option<usize> {
        match self {
            Json::Num(x) if *x >= 0.0 && x.fract() == 0.0 && *x < 1e15 => Some(*x as usize),
            _ => None,
        }
    }
}

/// Parses `text` (the contents of `path`, named in errors with the line of the problem).
pub(crate) fn parse(path: &Path, text: &str) -> Result<Json> {
    let mut p = Parser { b: text.as_bytes(), pos: 0 };
    let result = p.value(0).and_then(|v| {
        p.ws();
        if p.pos < p.b.len() {
            Err("trailing text after the value".to_string())
        } else {
            Ok(v)
        }
    });
    result.map_err(|m| {
        let line = 1 + p.b[..p.pos.min(p.b.len())].iter().filter(|&&c| c == b'\n').count();
        parse_error(path, line, format!("bad JSON: {m}"))
    })
}

struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
}

type R<T> = std::result::Result<T, String>;

impl Parser<'_> {
    fn ws(&mut self) {
        while self.b.get(self.pos).is_some_and(|c| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.b.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn value(&mut self, depth: usize) -> R<Json> {
        if depth > 64 {
            return Err("nested too deeply".into());
        }
        self.ws();
        match self.b.get(self.pos) {
            Some(b'{') => self.object(depth),
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                if self.eat(b']') {
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    if self.eat(b']') {
                        return Ok(Json::Arr(items));
                    }
                    if !self.eat(b',') {
                        return Err("expected `,` or `]`".into());
                    }
                }
            }
            Some(b'"') => self.string().map(Json::Str),
            Some(b't') if self.b[self.pos..].starts_with(b"true") => self.word(4, Json::Bool(true)),
            Some(b'f') if self.b[self.pos..].starts_with(b"false") => {
                self.word(5, Json::Bool(false))
            }
            Some(b'n') if self.b[self.pos..].starts_with(b"null") => self.word(4, Json::Null),
            Some(b'N') if self.b[self.pos..].starts_with(b"NaN") => {
                self.word(3, Json::Num(f64::NAN))
            }
            Some(b'I') if self.b[self.pos..].starts_with(b"Infinity") => {
                self.word(8, Json::Num(f64::INFINITY))
            }
            Some(b'-') if self.b[self.pos..].starts_with(b"-Infinity") => {
                self.word(9, Json::Num(f64::NEG_INFINITY))
            }
            Some(c) if *c == b'-' || c.is_ascii_digit() => self.number(),
            _ => Err("expected a value".into()),
        }
    }
    fn word(&mut self, len: usize, v: Json) -> R<Json> {
        self.pos += len;
        Ok(v)
    }
    fn object(&mut self, depth: usize) -> R<Json> {
        self.pos += 1;
        let mut members = Vec::new();
        if self.eat(b'}') {
            return Ok(Json::Obj(members));
        }
        loop {
            self.ws();
            if self.b.get(self.pos) != Some(&b'"') {
                return Err("expected a member name".into());
            }
            let key = self.string()?;
            if !self.eat(b':') {
                return Err("expected `:`".into());
            }
            members.push((key, self.value(depth + 1)?));
            if self.eat(b'}') {
                return Ok(Json::Obj(members));
            }
            if !self.eat(b',') {
                return Err("expected `,` or `}`".into());
            }
        }
    }
    fn number(&mut self) -> R<Json> {
        let start = self.pos;
        while self.b.get(self.pos).is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(c)) {
            self.pos += 1;
        }
        let text = std::str::from_utf8(&self.b[start..self.pos]).map_err(|e| e.to_string())?;
        text.parse().map(Json::Num).map_err(|_| format!("bad number `{text}`"))
    }
    fn string(&mut self) -> R<String> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let c = *self.b.get(self.pos).ok_or("unterminated string")?;
            self.pos += 1;
            match c {
                b'"' => return String::from_utf8(out).map_err(|_| "string is not UTF-8".into()),
                b'\\' => {
                    let e = *self.b.get(self.pos).ok_or("unterminated string")?;
                    self.pos += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hex =
                                self.b.get(self.pos..self.pos + 4).ok_or("short \\u escape")?;
                            self.pos += 4;
                            let code = std::str::from_utf8(hex)
                                .ok()
                                .and_then(|h| u32::from_str_radix(h, 16).ok());
                            code.and_then(char::from_u32).unwrap_or('\u{fffd}')
                        }
                        _ => return Err(format!("unknown escape `\\{}`", e as char)),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                c => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{parse, Json};
    use std::path::Path;

    #[test]
    fn values_and_errors() {
        let v = parse(
            Path::new("i.dat"),
            r#"{"a": {"0": "x\"y", "n": [1, -2.5e1, true, null]}, "z": [NaN, -Infinity]}"#,
        )
        .unwrap();
        assert_eq!(v.get("a").and_then(|a| a.get("0")).and_then(Json::as_str), Some("x\"y"));
        assert_eq!(
            v.get("a").and_then(|a| a.get("n")),
            Some(&Json::Arr(vec![Json::Num(1.0), Json::Num(-25.0), Json::Bool(true), Json::Null]))
        );
        let e = parse(Path::new("i.dat"), "{\n \"a\": ,\n}").unwrap_err().to_string();
        assert!(e.starts_with("i.dat:2:"), "{e}");
        let deep = "[".repeat(100);
        assert!(parse(Path::new("i.dat"), &deep).is_err());
    }
}
