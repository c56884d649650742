//! Graphviz output: a snapshot of a small module (checked by reading), escaping, determinism.

mod common;

use pigeon_ir::to_dot;

#[test]
fn rgat_snapshot() {
    insta::assert_snapshot!(to_dot(&common::rgat().unwrap()));
}

#[test]
fn output_is_deterministic() {
    let m = common::everything().unwrap();
    assert_eq!(to_dot(&m), to_dot(&m.clone()));
}

/// Every statement line has balanced, escaped quotes: inside a quoted string only `\"` and
/// `\\` escapes occur, and each line ends outside a string.
#[test]
fn names_with_quotes_and_newlines_are_escaped() {
    let dot = to_dot(&common::everything().unwrap());
    assert!(dot.starts_with("digraph \"every thing\" {\n"), "{dot}");
    assert!(dot.contains(r#"v2 [label="v2 = input \"x\\\"64\\\"\\n\"\nedge [3] f64""#), "{dot}");
    for line in dot.lines() {
        let mut in_string = false;
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => in_string = !in_string,
                '\\' if in_string => {
                    let next = chars.next();
                    assert!(matches!(next, Some('"' | '\\' | 'n')), "bad escape in {line}");
                }
                _ => {}
            }
        }
        assert!(!in_string, "unbalanced quotes in {line}");
    }
}
