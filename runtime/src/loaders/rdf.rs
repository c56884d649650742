//! The `rdf:` loader: gzip (or plain) N-Triples plus R-GCN style label TSVs (AIFB, MUTAG, BGS, AM).
//!
//! Every distinct subject and object is a node, literals included (as in the R-GCN authors'
//! preprocessing, which builds the graph from all terms of the stripped dumps); relations are the
//! distinct predicates, in order of first appearance; one node type `entity`. Terms are compared
//! by value: escapes in IRIs and literals are decoded, and a literal typed `xsd:string` is the
//! same term as the plain literal (RDF 1.1). Duplicate triples are kept as parallel edges (the
//! AIFB and MUTAG dumps have none).
//!
//! Node names: IRIs without the angle brackets (so that the label files, which name entities by
//! bare IRI, match), blank nodes as `_:label`, literals in canonical N-Triples form
//! (`"text"@en`, `"3"^^<http://www.w3.org/2001/XMLSchema#int>`).
//!
//! Labels come from `trainingSet.tsv` and `testSet.tsv` in the same directory (a header row; the
//! entity IRI in the first column, the class in the last); class names are sorted so that class
//! ids do not depend on row order. There is no validation split in these files.
//!
//! With the stripped dumps in `../shared/datasets` this gives exactly the R-GCN counts:
//! AIFB 8,285 nodes / 29,043 edges / 45 relations / 4 classes / 140 train / 36 test (5,450 of
//! the nodes are literals, 152 blank nodes); MUTAG 23,644 / 74,227 / 23 / 2 classes / 272 / 68
//! (1,104 literals).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::{for_each_line, open, parse_error, Interner};
use crate::error::Result;
use crate::graph::{HeteroGraph, Labels, Relation};

/// The datatype IRI that RDF 1.1 makes equal to a plain literal.
const XSD_STRING: &str = "http://www.w3.org/2001/XMLSchema#string";

/// Loads an RDF graph from a directory holding `*.nt.gz` / `*.nt` files (all of them, in name
/// order) and optional `trainingSet.tsv` / `testSet.tsv`, or from a single N-Triples file (label
/// files then looked up beside it).
pub fn load_rdf(path: &Path) -> Result<HeteroGraph> {
    let (dir, files) = triple_files(path)?;
    let mut nodes = Interner::default();
    let mut preds = Interner::default();
    let (mut src, mut dst, mut rel) = (Vec::new(), Vec::new(), Vec::new());
    for file in &files {
        let reader = open(file)?;
        let is_gz = file.extension().is_some_and(|e| e == "gz");
        let reader: Box<dyn std::io::BufRead> = if is_gz {
            Box::new(std::io::BufReader::new(MultiGzDecoder::new(reader)))
        } else {
            Box::new(reader)
        };
        for_each_line(file, reader, |line, text| {
            let Some([s, p, o]) = parse_triple(text).map_err(|m| parse_error(file, line, m))?
            else {
                return Ok(());
            };
            let too_many = || parse_error(file, line, "more than 2^32 distinct terms");
            src.push(nodes.intern(&s).ok_or_else(too_many)?);
            rel.push(preds.intern(&p).ok_or_else(too_many)?);
            dst.push(nodes.intern(&o).ok_or_else(too_many)?);
            Ok(())
        })?;
    }
    let labels = load_labels(&dir, &nodes)?;
    let num_nodes = nodes.len();
    let relations: Vec<Relation> = preds
        .into_names()
        .into_iter()
        .map(|name| Relation { name, src_type: Some(0), dst_type: Some(0) })
        .collect();
    Ok(HeteroGraph {
        name: format!("rdf:{}", path.display()),
        node_types: vec!["entity".into()],
        type_offsets: vec![0, num_nodes],
        base_relations: relations.len(),
        relations,
        src,
        dst,
        rel,
        node_names: Some(nodes.into_names()),
        labels,
        ..HeteroGraph::default()
    })
}

/// The directory for label files and the N-Triples files to read.
fn triple_files(path: &Path) -> Result<(PathBuf, Vec<PathBuf>)> {
    let is_nt = |p: &Path| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        name.ends_with(".nt.gz") || name.ends_with(".nt")
    };
    if path.is_file() {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        return Ok((dir, vec![path.to_path_buf()]));
    }
    let entries = std::fs::read_dir(path).map_err(|e| super::io_error(path, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| super::io_error(path, e))?;
        if is_nt(&entry.path()) {
            files.push(entry.path());
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(parse_error(path, 0, "no N-Triples file (*.nt.gz or *.nt) in this directory"));
    }
    Ok((path.to_path_buf(), files))
}

/// Reads `trainingSet.tsv` and `testSet.tsv` (each optional) into labels.
fn load_labels(dir: &Path, nodes: &Interner) -> Result<Option<Labels>> {
    let mut rows: Vec<(u32, String, bool)> = Vec::new(); // (node, class name, is_train)
    let mut any = false;
    for (name, is_train) in [("trainingSet.tsv", true), ("testSet.tsv", false)] {
        let path = dir.join(name);
        if !path.is_file() {
            continue;
        }
        any = true;
        let mut seen_header = false;
        for_each_line(&path, open(&path)?, |line, text| {
            if !seen_header {
                seen_header = true;
                return Ok(());
            }
            if text.trim().is_empty() {
                return Ok(());
            }
            let cols: Vec<&str> = text.split('\t').collect();
            let (Some(entity), Some(class), true) = (cols.first(), cols.last(), cols.len() >= 2)
            else {
                return Err(parse_error(
                    &path,
                    line,
                    "expected at least 2 tab-separated columns (entity, ..., label)",
                ));
            };
            let entity = entity.trim().trim_start_matches('<').trim_end_matches('>');
            let node = nodes.get(entity).ok_or_else(|| {
                parse_error(&path, line, format!("entity `{entity}` is not a node of the graph"))
            })?;
            if rows.iter().any(|r| r.0 == node) {
                return Err(parse_error(
                    &path,
                    line,
                    format!("entity `{entity}` is labelled twice"),
                ));
            }
            rows.push((node, class.trim().to_owned(), is_train));
            Ok(())
        })?;
    }
    if !any {
        return Ok(None);
    }
    let class_names: Vec<String> =
        rows.iter().map(|r| r.1.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let mut labels = Labels { class_names, ..Labels::default() };
    for (node, class, is_train) in rows {
        let c = labels.class_names.binary_search(&class).unwrap_or(0) as u32;
        labels.assignments.push((node, c));
        if is_train {
            labels.train.push(node)
        } else {
            labels.test.push(node)
        }
    }
    Ok(Some(labels))
}

/// Parses one N-Triples line into the keys of its subject, predicate and object, or `None`
/// for a blank or comment line.
pub(crate) fn parse_triple(line: &str) -> std::result::Result<Option<[String; 3]>, String> {
    let mut cur = Cursor { s: line, pos: 0 };
    cur.skip_ws();
    if cur.at_end() || cur.peek() == Some(b'#') {
        return Ok(None);
    }
    let subject = match cur.peek() {
        Some(b'<') => cur.iri()?,
        Some(b'_') => cur.blank()?,
        _ => return Err(cur.fail("a subject (an IRI `<...>` or a blank node `_:x`)")),
    };
    cur.need_ws()?;
    if cur.peek() != Some(b'<') {
        return Err(cur.fail("a predicate IRI `<...>`"));
    }
    let predicate = cur.iri()?;
    cur.need_ws()?;
    let object = match cur.peek() {
        Some(b'<') => cur.iri()?,
        Some(b'_') => cur.blank()?,
        Some(b'"') => cur.literal()?,
        _ => return Err(cur.fail("an object (an IRI, a blank node or a literal)")),
    };
    cur.skip_ws();
    if cur.peek() != Some(b'.') {
        return Err(cur.fail("`.` ending the triple"));
    }
    cur.pos += 1;
    cur.skip_ws();
    if !cur.at_end() && cur.peek() != Some(b'#') {
        return Err(cur.fail("the end of the line after `.`"));
    }
    Ok(Some([subject, predicate, object]))
}

/// A position in one line. Every position it stops at is next to an ASCII byte, so slicing
/// there is always on a character boundary.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }
    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }
    fn need_ws(&mut self) -> std::result::Result<(), String> {
        if !matches!(self.peek(), Some(b' ' | b'\t')) {
            return Err(self.fail("whitespace between terms"));
        }
        self.skip_ws();
        Ok(())
    }
    fn fail(&self, expected: &str) -> String {
        let rest: String = self.s.get(self.pos..).unwrap_or("").chars().take(20).collect();
        format!("column {}: expected {expected}, found `{rest}`", self.pos + 1)
    }

    /// `<iri>`, returned without brackets and with `\u` escapes decoded.
    fn iri(&mut self) -> std::result::Result<String, String> {
        let start = self.pos;
        self.pos += 1;
        let end = self.s[self.pos..]
            .find('>')
            .map(|i| self.pos + i)
            .ok_or_else(|| self.fail("`>` closing the IRI"))?;
        let raw = &self.s[self.pos..end];
        self.pos = end + 1;
        let iri = unescape(raw, false).map_err(|m| format!("column {}: {m}", start + 1))?;
        if let Some(c) = iri.chars().find(|&c| c <= ' ' || "<>\"{}|^`\\".contains(c)) {
            return Err(format!("column {}: character {c:?} is not allowed in an IRI", start + 1));
        }
        let scheme_ok = iri.find(':').is_some_and(|i| {
            let scheme = &iri[..i];
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        });
        if !scheme_ok {
            return Err(format!("column {}: `{iri}` is not an absolute IRI", start + 1));
        }
        Ok(iri)
    }

    /// `_:label`, returned as written.
    fn blank(&mut self) -> std::result::Result<String, String> {
        if !self.s[self.pos..].starts_with("_:") {
            return Err(self.fail("a blank node `_:label`"));
        }
        let start = self.pos;
        let mut end = self.pos + 2;
        let bytes = self.s.as_bytes();
        while end < bytes.len() && !matches!(bytes[end], b' ' | b'\t' | b'<' | b'"' | b'#') {
            end += 1;
        }
        // A label cannot end with `.`: a trailing dot ends the triple.
        while end > start + 2 && bytes[end - 1] == b'.' {
            end -= 1;
        }
        // `end` follows an ASCII byte or lies before one, so the slice is on char boundaries.
        let label = self.s.get(start..end).ok_or_else(|| self.fail("a blank node label"))?;
        if label.len() == 2 {
            return Err(self.fail("a blank node label after `_:`"));
        }
        self.pos = end;
        Ok(label.to_owned())
    }

    /// `"text"`, `"text"@lang` or `"text"^^<iri>`, returned in canonical form.
    fn literal(&mut self) -> std::result::Result<String, String> {
        let start = self.pos;
        let bytes = self.s.as_bytes();
        let mut i = self.pos + 1;
        while i < bytes.len() && bytes[i] != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        if i >= bytes.len() {
            return Err(format!("column {}: unterminated literal", start + 1));
        }
        let raw = &self.s[self.pos + 1..i];
        let text = unescape(raw, true).map_err(|m| format!("column {}: {m}", start + 1))?;
        self.pos = i + 1;
        let mut key = String::with_capacity(text.len() + 2);
        key.push('"');
        for c in text.chars() {
            match c {
                '"' => key.push_str("\\\""),
                '\\' => key.push_str("\\\\"),
                '\n' => key.push_str("\\n"),
                '\r' => key.push_str("\\r"),
                c => key.push(c),
            }
        }
        key.push('"');
        match self.peek() {
            Some(b'@') => {
                let tag_start = self.pos;
                self.pos += 1;
                while self.peek().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-') {
                    self.pos += 1;
                }
                if self.pos == tag_start + 1 {
                    return Err(self.fail("a language tag after `@`"));
                }
                key.push_str(&self.s[tag_start..self.pos]);
            }
            Some(b'^') => {
                if !self.s[self.pos..].starts_with("^^<") {
                    return Err(self.fail("`^^<datatype>`"));
                }
                self.pos += 2;
                let datatype = self.iri()?;
                if datatype != XSD_STRING {
                    key.push_str("^^<");
                    key.push_str(&datatype);
                    key.push('>');
                }
            }
            _ => {}
        }
        Ok(key)
    }
}

/// Decodes `\uXXXX` and `\UXXXXXXXX` escapes, and (in literals) `\t \b \n \r \f \" \' \\`.
fn unescape(raw: &str, literal: bool) -> std::result::Result<String, String> {
    if !raw.contains('\\') {
        return Ok(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or("a `\\` ends the term")?;
        let simple = match e {
            't' => Some('\t'),
            'b' => Some('\u{8}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            'f' => Some('\u{c}'),
            '"' => Some('"'),
            '\'' => Some('\''),
            '\\' => Some('\\'),
            _ => None,
        };
        match (e, simple) {
            (_, Some(s)) if literal => out.push(s),
            ('u' | 'U', _) => {
                let n = if e == 'u' { 4 } else { 8 };
                let hex: String = chars.by_ref().take(n).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == n)
                    .ok_or_else(|| format!("bad escape `\\{e}{hex}`"))?;
                out.push(
                    char::from_u32(code)
                        .ok_or_else(|| format!("`\\{e}{hex}` is not a character"))?,
                );
            }
            _ => return Err(format!("unknown escape `\\{e}`")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse_triple;

    fn check(line: &str, expect: Option<[&str; 3]>) {
        let got = parse_triple(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(got, expect.map(|t| t.map(String::from)), "{line}");
    }

    fn check_err(line: &str, needle: &str) {
        match parse_triple(line) {
            Err(m) => assert!(m.contains(needle), "{line}: `{m}` lacks `{needle}`"),
            Ok(t) => panic!("{line}: parsed as {t:?}"),
        }
    }

    #[test]
    fn terms() {
        check(
            "<http://a/x> <http://p/q> <http://a/y> .",
            Some(["http://a/x", "http://p/q", "http://a/y"]),
        );
        check("_:b0 <http://p/q> _:b1.", Some(["_:b0", "http://p/q", "_:b1"]));
        check(
            r#"<http://a> <http://p> "a \"q\"\tb\u00e9" ."#,
            Some(["http://a", "http://p", "\"a \\\"q\\\"\tbé\""]),
        );
        check(
            r#"<http://a> <http://p> "chat"@fr-CA ."#,
            Some(["http://a", "http://p", "\"chat\"@fr-CA"]),
        );
        check(
            r#"<http://a> <http://p> "3"^^<http://www.w3.org/2001/XMLSchema#int> . # note"#,
            Some(["http://a", "http://p", "\"3\"^^<http://www.w3.org/2001/XMLSchema#int>"]),
        );
        check(
            r#"<http://a> <http://p> "s"^^<http://www.w3.org/2001/XMLSchema#string> ."#,
            Some(["http://a", "http://p", "\"s\""]),
        );
        check(
            r"<http://a\u0042> <http://p> <http://c> .",
            Some(["http://aB", "http://p", "http://c"]),
        );
        check("   ", None);
        check("# comment", None);
    }

    #[test]
    fn errors() {
        check_err("<http://a> <http://p> <http://c>", "`.`");
        check_err("<http://a> <http://p> \"open .", "unterminated");
        check_err("<http://a> \"p\" <http://c> .", "predicate");
        check_err("<http://a> <http://p> <http://c> . x", "end of the line");
        check_err("<http://a> <http://p> \"x\\q\" .", "unknown escape");
        check_err("<http://a> <http://p> \"x\\u12\" .", "bad escape");
        check_err("<a b> <http://p> <http://c> .", "not allowed");
        check_err("<rel> <http://p> <http://c> .", "absolute");
        check_err("_: <http://p> <http://c> .", "blank node label");
        check_err("<http://a> <http://p> \"x\"@ .", "language tag");
        check_err("é <http://p> <http://c> .", "subject");
    }
}
