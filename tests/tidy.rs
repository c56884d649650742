//! Repository hygiene, checked as a test: every Rust file starts with a `//!` line saying what
//! it holds, source files stay under the size the style guide allows, and library crates do not
//! print or exit.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn workspace_files() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in
        ["src", "tests", "frontend", "ir", "passes", "codegen", "runtime", "examples", "bench"]
    {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} Rust files", files.len());
    files
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let missing: Vec<String> = workspace_files()
        .into_iter()
        .filter(|p| !std::fs::read_to_string(p).unwrap_or_default().starts_with("//!"))
        .map(|p| p.display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a leading `//!` doc line:\n{}", missing.join("\n"));
}

#[test]
fn source_files_stay_under_800_lines() {
    let long: Vec<String> = workspace_files()
        .into_iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "src"))
        .filter_map(|p| {
            let n = std::fs::read_to_string(&p).unwrap_or_default().lines().count();
            (n > 800).then(|| format!("{} ({n} lines)", p.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these files:\n{}", long.join("\n"));
}

#[test]
fn library_crates_do_not_print_or_exit() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for krate in ["frontend", "ir", "passes", "codegen", "runtime"] {
        rust_files(&root.join(krate).join("src"), &mut files);
    }
    let bad: Vec<String> = files
        .iter()
        .flat_map(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            // Only code before the unit tests counts.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default().to_string();
            ["println!", "eprintln!", "print!(", "eprint!(", "process::exit", "dbg!("]
                .iter()
                .filter(|pat| code.contains(*pat))
                .map(|pat| format!("{}: {pat}", p.display()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(bad.is_empty(), "library code must not print or exit:\n{}", bad.join("\n"));
}
