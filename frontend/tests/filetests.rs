//! File tests: `tests/filetests/parse/*.rgnn` snapshot the AST dump; `tests/filetests/fail/*.rgnn`
//! must fail `check` with diagnostics containing every `// expect: ...` line of their header, and
//! snapshot the full rendering. Every `examples/*.rgnn` must check and compile.

use pigeon_frontend::{ast_to_string, check, compile, model_names, parse, SourceFile};
use std::path::Path;

/// Reads `path` as a source file named relative to `tests/filetests`.
fn source(path: &Path) -> SourceFile {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path
        .components()
        .rev()
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/");
    SourceFile { name, text }
}

fn header_check(src: &SourceFile, stage: &str) {
    let first = src.text.lines().next().unwrap_or("");
    assert_eq!(
        first.trim(),
        format!("// test: {stage}"),
        "{}: first line must name the stage",
        src.name
    );
}

#[test]
fn parse_files() {
    insta::glob!("../../tests/filetests", "parse/*.rgnn", |path| {
        let src = source(path);
        header_check(&src, "parse");
        let file = parse(&src).unwrap_or_else(|d| panic!("{}", d.render(&src.name, &src.text)));
        // Parse tests hold valid programs: they must check too.
        if let Err(d) = check(&src) {
            panic!("{}", d.render(&src.name, &src.text));
        }
        // ... and every model whose parameters all have defaults must compile to verified IR.
        for m in &file.models {
            if m.params.iter().all(|p| p.default.is_some()) {
                let module = compile(&src, Some(&m.name.name), &[])
                    .unwrap_or_else(|d| panic!("{}", d.render(&src.name, &src.text)));
                assert_eq!(pigeon_ir::verify(&module), Ok(()), "{}: {}", src.name, m.name.name);
                assert!(!module.outputs.is_empty(), "{}: {} has no outputs", src.name, m.name.name);
            }
        }
        insta::assert_snapshot!(ast_to_string(&file));
    });
}

#[test]
fn fail_files() {
    insta::glob!("../../tests/filetests", "fail/*.rgnn", |path| {
        let src = source(path);
        header_check(&src, "fail");
        let expects: Vec<&str> = src
            .text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("// expect:"))
            .map(str::trim)
            .collect();
        assert!(!expects.is_empty(), "{}: no `// expect:` lines", src.name);
        let rendered = match check(&src) {
            Ok(()) => panic!("{}: check succeeded, expected errors", src.name),
            Err(d) => d.render(&src.name, &src.text),
        };
        for e in &expects {
            assert!(rendered.contains(e), "{}: expected `{e}` in\n{rendered}", src.name);
        }
        insta::assert_snapshot!(rendered);
    });
}

#[test]
fn examples_check_and_compile() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.retain(|p| p.extension().is_some_and(|e| e == "rgnn"));
    paths.sort();
    for path in &paths {
        let src = source(path);
        if let Err(d) = check(&src) {
            panic!("{}", d.render(&src.name, &src.text));
        }
        let names = model_names(&src).unwrap_or_default();
        assert!(!names.is_empty(), "{}: no models", src.name);
        match compile(&src, None, &[]) {
            Ok(module) => assert_eq!(pigeon_ir::verify(&module), Ok(()), "{}", src.name),
            Err(d) => panic!("{}", d.render(&src.name, &src.text)),
        }
    }
    eprintln!("checked and compiled {} example file(s)", paths.len());
}

/// Every prefix of a valid file (and the file with any one character removed) is checked
/// without panicking.
#[test]
fn truncated_and_mutilated_sources_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/filetests/parse");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.sort();
    let Some(path) = paths.first() else { panic!("no parse files in {}", dir.display()) };
    let text = source(path).text;
    let mut failures = 0;
    for (i, c) in text.char_indices() {
        for t in [text[..i].to_string(), format!("{}{}", &text[..i], &text[i + c.len_utf8()..])] {
            let src = SourceFile { name: "t".into(), text: t };
            if check(&src).is_err() {
                failures += 1;
            }
            let _ = compile(&src, None, &[]);
        }
    }
    assert!(failures > 0, "some truncated prefixes must fail to check");
}

/// Long and deeply nested expressions are checked (or rejected) without overflowing the stack.
#[test]
fn deep_expressions_do_not_overflow() {
    for n in [100, 300, 990, 999, 5000, 100_000] {
        let sum = vec!["h"; n].join(" + ");
        let parens = format!("{}h{}", "(".repeat(n), ")".repeat(n));
        let negs = format!("{}h", "-".repeat(n));
        let calls = format!("{}h{}", "relu(".repeat(n), ")".repeat(n));
        for e in [sum, parens, negs, calls] {
            let text = format!("model m() {{ input h: node[2]; node y = {e}; output y; }}");
            let src = SourceFile { name: "t".into(), text };
            // Up to 300 levels must work; near the limit either outcome is fine, as long as
            // nothing crashes; far beyond it the statement is rejected as too long.
            match check(&src) {
                Ok(()) => assert!(n < 5000, "n = {n} should be too long"),
                Err(d) => {
                    let text = d.to_string();
                    assert!(n > 300 && text.contains("statement too long"), "n = {n}: {text}");
                }
            }
            let _ = compile(&src, None, &[]);
        }
    }
}
