//! The inter-operator IR of real models: golden files (`tests/filetests/inter/*.rgnn`, checked
//! with insta) and a print/parse round trip plus verification over the whole model zoo under
//! several parameter settings.
//!
//! A golden file starts with `// test: inter`, may name parameter overrides on a line
//! `// params: heads=2 out_dim=8`, and its expected IR lives in `tests/snapshots/`. Re-bless with
//! `INSTA_UPDATE=always cargo test --test inter` and review the diff.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn params_of(text: &str) -> Vec<(String, i64)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("// params:"))
        .flat_map(|l| l.split_whitespace())
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("params are k=v");
            (k.to_string(), v.parse().expect("integer param"))
        })
        .collect()
}

fn compile_file(path: &Path, params: &[(String, i64)]) -> pigeon::ir::Module {
    let src = pigeon::read_source(path).expect("read");
    pigeon::compile(&src, None, params).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn golden_inter() {
    insta::glob!("filetests/inter/*.rgnn", |path| {
        let text = std::fs::read_to_string(path).expect("read");
        assert!(
            text.starts_with("// test: inter"),
            "{}: missing `// test: inter` header",
            path.display()
        );
        let module = compile_file(path, &params_of(&text));
        insta::assert_snapshot!(pigeon::ir::text::print(&module));
    });
}

fn round_trip(module: &pigeon::ir::Module, what: &str) {
    pigeon::verify(module).unwrap_or_else(|e| panic!("{what}: {e}"));
    let printed = pigeon::ir::text::print(module);
    let parsed = pigeon::ir::parse::parse_module(&printed)
        .unwrap_or_else(|e| panic!("{what}: {e}\n{printed}"));
    assert_eq!(&parsed, module, "{what}: parse(print(m)) != m");
    assert_eq!(pigeon::ir::text::print(&parsed), printed, "{what}: print is not stable");
}

#[test]
fn zoo_round_trips_through_the_text_form() {
    let settings: &[&[(&str, i64)]] =
        &[&[], &[("heads", 2)], &[("heads", 4), ("out_dim", 32), ("in_dim", 32)]];
    let mut count = 0;
    for entry in std::fs::read_dir(root().join("examples")).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "rgnn") {
            continue;
        }
        let src = pigeon::read_source(&path).expect("read");
        let names = pigeon::frontend::model_names(&src).expect("parses");
        for setting in settings {
            let params: Vec<(String, i64)> =
                setting.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            let model = names.last().expect("a model");
            // Settings naming a parameter the model does not have are skipped for that model.
            let Ok(module) = pigeon::compile(&src, Some(model), &params) else { continue };
            round_trip(&module, &format!("{} {params:?}", path.display()));
            count += 1;
        }
        // Every model of the file, alone with its defaults.
        for name in &names {
            if let Ok(module) = pigeon::compile(&src, Some(name), &[]) {
                round_trip(&module, &format!("{} model {name}", path.display()));
            }
        }
    }
    assert!(count >= 8, "round-tripped {count} zoo instantiations");
}
