//! The text form: print/parse round trips, the exact printed form, and parser errors.

mod common;

use pigeon_ir::{parse_module, print, InputKind, Inst, Module, Op};

/// print -> parse gives an equal module, and parse -> print gives the identical text.
fn round_trip(module: &Module) {
    let text = print(module);
    let parsed = match parse_module(&text) {
        Ok(m) => m,
        Err(e) => panic!("printed text does not parse: {e}\n{text}"),
    };
    assert_eq!(&parsed, module, "text:\n{text}");
    assert_eq!(print(&parsed), text);
    assert_eq!(module.to_string(), text, "Display and print differ");
}

#[test]
fn rgat_round_trips() {
    round_trip(&common::rgat().unwrap());
}

#[test]
fn every_operator_round_trips() {
    round_trip(&common::everything().unwrap());
}

#[test]
fn empty_module_round_trips() {
    let m = Module { name: "empty".into(), ..Module::default() };
    assert_eq!(print(&m), "model empty()\n");
    round_trip(&m);
}

#[test]
fn floats_round_trip_bit_for_bit() {
    let values = [
        0.1 + 0.2,
        -0.0,
        1e-310,
        f64::MAX,
        f64::MIN_POSITIVE,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1.0 / 3.0,
    ];
    for c in values {
        let mut m = Module { name: "c".into(), ..Module::default() };
        let ty = pigeon_ir::Type {
            domain: pigeon_ir::Domain::Shared,
            shape: pigeon_ir::Shape::scalar(),
            dtype: pigeon_ir::DType::F32,
        };
        m.insts.push(Inst { op: Op::Const(c), ty, name: None });
        let parsed = parse_module(&print(&m)).unwrap();
        let op = parsed.insts.values().next().map(|i| i.op.clone());
        match op {
            Some(Op::Const(p)) => assert_eq!(p.to_bits(), c.to_bits(), "{c:?} came back as {p:?}"),
            other => panic!("expected a const, got {other:?}"),
        }
    }
}

/// The example in `text.rs`'s module doc is exactly what the printer writes for `rgat()`.
#[test]
fn module_doc_example_is_exact() {
    let src = include_str!("../src/text.rs");
    let start = src.find("//! ```text\n").expect("doc example") + "//! ```text\n".len();
    let end = start + src[start..].find("//! ```\n").expect("end of doc example");
    let doc: String = src[start..end]
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("//! ").unwrap_or(l.trim_start_matches("//!"))))
        .collect();
    let rgat = common::rgat().unwrap();
    assert_eq!(print(&rgat), doc);
    assert_eq!(parse_module(&doc).unwrap(), rgat);
}

/// Free-form spacing, comments, statements out of section order and quoted names all parse to
/// the same module as the canonical text.
#[test]
fn parser_accepts_free_form_text() {
    let text = r#"
// a comment line
model "rgat" ( in_dim=4,out_dim = 2 , heads = +1 )   // trailing comment
weight w0 "W" : relation [4,1,2] glorot
v0=input "h":node[4]f32
output "out" = v10
v1 = weight w0 : relation [4, 1, 2] f32
weight w1 "a_src": relation [1, 2] glorot
v2 = weight w1 : relation [1, 2] f32
	v3 = gather v0 by src : edge [4] f32
v4 = linear v3 , v1 by relation : edge [1, 2] f32 ; "z"
v5 = slice v2 by relation to edge : edge [1, 2] f32 // "not a name"
v6 = dot v4, v5 : edge [1] f32
v7 = leaky_relu( 2e-1 ) v6 : edge [1] f32 ; score
v8 = softmax v7 : edge [1] f32 ; alpha
v9 = mul v8, v4 : edge [1, 2] f32
v10 = aggregate sum v9 : node [1, 2] f32 ; "out"
"#;
    assert_eq!(parse_module(text).unwrap(), common::rgat().unwrap());
}

#[test]
fn crlf_line_ends_parse() {
    let text = print(&common::rgat().unwrap()).replace('\n', "\r\n");
    assert_eq!(parse_module(&text).unwrap(), common::rgat().unwrap());
}

/// Parses `text` and checks the error it gives, as `line:col: message`.
fn check(text: &str, expected: &str) {
    match parse_module(text) {
        Ok(m) => panic!("expected error `{expected}`, but it parsed:\n{}", print(&m)),
        Err(e) => assert_eq!(e.to_string(), expected, "for text:\n{text}"),
    }
}

const HEAD: &str = "model m()\nv0 = input \"h\" : node [4] f32\n";

#[test]
fn syntax_errors() {
    check("", "1:1: expected `model NAME(...)`, found end of input");
    check("\n  \n", "3:1: expected `model NAME(...)`, found end of input");
    check("weight w0 \"W\": shared [1] zeros", "1:1: expected `model NAME(...)`, found `weight`");
    check("model m(a = x)", "1:13: expected an integer, found `x`");
    check("model m(a = 1", "1:14: expected `)`, found end of line");
    check("model m() extra", "1:11: expected end of line, found `extra`");
    check("model m()\nmodel n()", "2:1: a second `model` header: one text holds one module");
    check(
        "model m()\nv1 = const 1.0 : shared [] f32",
        "2:1: expected `v0` (instructions are numbered in order), found `v1`",
    );
    check(
        "model m()\nweight w1 \"W\": shared [1] zeros",
        "2:8: expected `w0` (weights are numbered in order), found `w1`",
    );
    check(
        "model m()\nweight w0 W: shared [1] zeros",
        "2:11: expected the weight's name (a string), found `W`",
    );
    check(
        "model m()\nweight w0 \"W\": edge [1] zeros",
        "2:16: expected one of `shared`, `relation`, `ntype`, found `edge`",
    );
    check(
        "model m()\nweight w0 \"W\": shared [1] random",
        "2:27: expected one of `glorot`, `zeros`, `ones`, found `random`",
    );
    check(
        "model m()\nfoo",
        "2:1: expected a statement (`weight wN ...`, `vN = ...` or `output ...`), found `foo`",
    );
    check(
        "model m()\n= v0",
        "2:1: expected a statement (`weight wN ...`, `vN = ...` or `output ...`), found `=`",
    );
}

#[test]
fn instruction_errors() {
    check(
        &format!("{HEAD}v1 = frob v0 : node [4] f32"),
        "3:6: expected an operator (`input`, `gather`, `linear`, `relu`, `add`, ...), found `frob`",
    );
    check("model m()\nv0 = input \"h\"", "2:15: expected `:`, found end of line");
    check(
        "model m()\nv0 = input h : node [4] f32",
        "2:12: expected the input's name (a string), found `h`",
    );
    check("model m()\nv0 = input \"h\" : nodes [4] f32", "2:18: expected one of `node`, `edge`, `compact.src`, `compact.dst`, `shared`, `relation`, `ntype`, found `nodes`");
    check("model m()\nv0 = input \"h\" : node [4 f32", "2:26: expected `]`, found `f32`");
    check(
        "model m()\nv0 = input \"h\" : node [-4] f32",
        "2:24: expected an extent (a non-negative integer), found `-4`",
    );
    check(
        "model m()\nv0 = input \"h\" : node [99999999999999999999999] f32",
        "2:24: expected an extent (a non-negative integer), found `99999999999999999999999`",
    );
    check(
        "model m()\nv0 = input \"h\" : node [4] f16",
        "2:27: expected one of `f32`, `f64`, found `f16`",
    );
    check(
        "model m()\nv0 = input \"h\" : node [4] f32 ;",
        "2:32: expected the value's source name, found end of line",
    );
    check(&format!("{HEAD}v1 = gather v0 by source : edge [4] f32"), "3:19: expected one of `src`, `dst`, `compact.src`, `compact.dst`, `node.src`, `node.dst`, found `source`");
    check(
        &format!("{HEAD}v1 = gather x0 by src : edge [4] f32"),
        "3:13: expected a value (`v0`, `v1`, ...), found `x0`",
    );
    check(
        &format!("{HEAD}v1 = linear v0 v0 by same : node [4] f32"),
        "3:16: expected `,`, found `v0`",
    );
    check(
        &format!("{HEAD}v1 = slice v0 by rel to edge : edge [4] f32"),
        "3:18: expected one of `same`, `relation`, `ntype`, `src.ntype`, `dst.ntype`, found `rel`",
    );
    check(&format!("{HEAD}v1 = leaky_relu v0 : node [4] f32"), "3:17: expected `(`, found `v0`");
    check(
        &format!("{HEAD}v1 = elu(one) v0 : node [4] f32"),
        "3:10: expected a number, found `one`",
    );
    check(
        &format!("{HEAD}v1 = aggregate avg v0 : node [4] f32"),
        "3:16: expected one of `sum`, `mean`, `max`, found `avg`",
    );
    check(
        &format!("{HEAD}v1 = view v0 [2, 2] : node [2, 2] f32"),
        "3:14: expected `as`, found `[`",
    );
    check(
        &format!("{HEAD}v1 = concat v0, : node [4] f32"),
        "3:17: expected a value (`v0`, `v1`, ...), found `:`",
    );
    check(
        &format!("{HEAD}output out = v0"),
        "3:8: expected the output's name (a string), found `out`",
    );
    check(
        &format!("{HEAD}v1 = weight 0 : shared [] f32"),
        "3:13: expected a weight (`w0`, `w1`, ...), found `0`",
    );
}

#[test]
fn lexical_errors() {
    check("model m()\nv0 = input \"h : node [4] f32", "2:12: unterminated string: expected `\"`");
    check(
        "model m()\nv0 = input \"a\\qb\" : node [4] f32",
        "2:14: bad escape: expected one of \\\\ \\\" \\n \\t \\r \\0 \\u{HEX}",
    );
    check(
        "model m()\nv0 = input \"a\\u{110000}\" : node [4] f32",
        "2:14: bad escape: expected one of \\\\ \\\" \\n \\t \\r \\0 \\u{HEX}",
    );
    check("model m()\nv0 = input \"h\" : node [4] f32 $", "2:31: unexpected character '$'");
    check("model m()\nv0 = const - 1 : shared [] f32", "2:12: unexpected character '-'");
    check("model m()\nv0 = input \"h\" : node [4] f32 ; é", "2:33: unexpected character 'é'");
}

#[test]
fn escapes_and_comments_inside_strings() {
    let m = parse_module(
        "model m()\nv0 = input \"a//b\\u{e9}\\t\\0\" : node [4] f32 ; \"// x\" // real comment",
    )
    .unwrap();
    let inst = m.insts.values().next().unwrap();
    assert_eq!(inst.op, Op::Input { name: "a//bé\t\0".into(), kind: InputKind::Data });
    assert_eq!(inst.name.as_deref(), Some("// x"));
}

/// Verifier violations found after parsing are reported at the statement (for a type, at the
/// type), with the verifier's message.
#[test]
fn semantic_errors_point_at_the_statement() {
    check(
        &format!("{HEAD}v1 = gather v0 by src : edge [2] f32"),
        "3:25: v1: declared type edge [2] f32 differs from the inferred edge [4] f32 (invariant 8)",
    );
    check(
        &format!("{HEAD}v1 = gather v0 by compact.src : edge [4] f32"),
        "3:33: v1: gather by compact.src reads a compact.src value, but v0 is node (invariant 8)",
    );
    check(
        &format!("{HEAD}v1 = relu v2 : node [4] f32"),
        "3:6: v1: operand v2 refers to no value (invariant 4)",
    );
    check(
        &format!("{HEAD}v1 = relu v1 : node [4] f32"),
        "3:6: v1: operand v1 refers to itself (invariant 4)",
    );
    check(
        &format!("{HEAD}v1 = weight w0 : shared [] f32"),
        "3:18: v1: weight w0 is not declared (invariant 5)",
    );
    check(
        &format!("{HEAD}output \"o\" = v1"),
        "3:1: output \"o\": refers to v1, which is not defined (invariant 10)",
    );
    check("model m(a = 1, a = 2)", "1:1: model: parameter \"a\" is declared twice (invariant 1)");
    check(
        "model m()\nweight w0 \"W\": shared [0] zeros",
        "2:1: w0: shape [0] has an extent of 0 (invariant 3)",
    );
}

/// No input makes the parser panic: every prefix, and every one-character deletion or
/// replacement of a valid text, gives a module or an error.
#[test]
fn parser_never_panics_on_mangled_text() {
    let text = print(&common::everything().unwrap());
    let chars: Vec<char> = text.chars().collect();
    let mut errors = 0;
    for i in 0..chars.len() {
        let prefix: String = chars[..i].iter().collect();
        let deleted: String = chars[..i].iter().chain(&chars[i + 1..]).collect();
        errors += usize::from(parse_module(&prefix).is_err());
        errors += usize::from(parse_module(&deleted).is_err());
        for c in ['"', '\\', ':', '9', '\n'] {
            let replaced: String =
                chars[..i].iter().chain(std::iter::once(&c)).chain(&chars[i + 1..]).collect();
            errors += usize::from(parse_module(&replaced).is_err());
        }
    }
    // Most manglings must be rejected; a few (deleting a space, say) are harmless.
    assert!(errors > chars.len() * 3, "only {errors} of {} manglings rejected", chars.len() * 7);
}
