//! End-to-end tests of the `pigeon` binary: exit codes, summaries and files written.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pigeon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pigeon"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("spawn pigeon")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn datasets() -> Option<PathBuf> {
    let dir = std::env::var_os("PIGEON_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/datasets"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: datasets not found at {} (set PIGEON_DATASETS)", dir.display());
        None
    }
}

#[test]
fn check_accepts_every_zoo_model() {
    for entry in std::fs::read_dir(root().join("examples")).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "rgnn") {
            let o = pigeon(&["check", path.to_str().expect("utf-8 path")]);
            let (out, err) = text(&o);
            assert!(o.status.success(), "{}: {err}", path.display());
            assert!(out.starts_with("ok: "), "{out}");
        }
    }
}

#[test]
fn check_rejects_a_bad_model_with_a_caret() {
    let dir = tempdir("check");
    let bad = dir.join("bad.rgnn");
    std::fs::write(
        &bad,
        "model m(d = 4) {\n    input h: node[d];\n    node y = h @ Wx;\n    output y;\n}\n",
    )
    .expect("write");
    let o = pigeon(&["check", bad.to_str().expect("utf-8")]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("bad.rgnn:3:18"), "{err}");
    assert!(err.contains("^^"), "{err}");
}

#[test]
fn dump_inter_text_and_dot() {
    let o = pigeon(&["dump", "examples/rgat.rgnn", "--stage", "inter"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("edge_softmax") || out.contains("softmax"), "{out}");
    let o = pigeon(&[
        "dump",
        "examples/rgat.rgnn",
        "--stage",
        "inter",
        "--format",
        "dot",
        "--param",
        "heads=2",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.starts_with("digraph"), "{out}");
    let o = pigeon(&["dump", "examples/rgat.rgnn", "--stage", "ast"]);
    assert!(o.status.success());
}

#[test]
fn run_on_a_synthetic_graph_prints_a_summary_and_writes_outputs() {
    let dir = tempdir("run");
    let out_path = dir.join("out.safetensors");
    let o = pigeon(&[
        "run",
        "examples/hgt.rgnn",
        "--graph",
        "synthetic:nodes=300,edges=2000,relations=5,ntypes=3,seed=1",
        "--backend",
        "reference",
        "--param",
        "heads=2",
        "--output",
        out_path.to_str().expect("utf-8"),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("output    out: 300 x [64]"), "{out}");
    let bytes = std::fs::read(&out_path).expect("output written");
    assert!(bytes.len() > 300 * 64 * 4, "output file holds the tensor");
    // Same seed, same numbers: the summary is deterministic apart from the timing line.
    let again = pigeon(&[
        "run",
        "examples/hgt.rgnn",
        "--graph",
        "synthetic:nodes=300,edges=2000,relations=5,ntypes=3,seed=1",
        "--param",
        "heads=2",
        "--backend",
        "reference",
    ]);
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("time") && !l.starts_with("wrote"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&out), strip(&text(&again).0));
}

#[test]
fn run_reports_a_bad_graph_spec_and_a_bad_param() {
    let o = pigeon(&["run", "examples/rgcn.rgnn", "--graph", "nosuch:/tmp"]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("nosuch"), "{}", text(&o).1);
    let o = pigeon(&[
        "run",
        "examples/rgcn.rgnn",
        "--graph",
        "synthetic:nodes=10,edges=20,relations=2,ntypes=1,seed=0",
        "--param",
        "nope=3",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("nope"), "{}", text(&o).1);
}

#[test]
fn quick_start_runs_rgat_on_aifb() {
    let Some(data) = datasets() else { return };
    let spec = format!("rdf:{}", data.join("aifb").display());
    let o = pigeon(&["run", "examples/rgat.rgnn", "--graph", &spec, "--backend", "reference"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("output    out: 8285 x [64]"), "{out}");
}

#[test]
fn graph_info_prints_counts() {
    let o = pigeon(&["graph", "info", "synthetic:nodes=100,edges=500,relations=4,ntypes=2,seed=3"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("nodes       100"), "{out}");
    assert!(out.contains("edges       500"), "{out}");
    assert!(out.contains("relations   4"), "{out}");
}

#[test]
fn saved_weights_load_back_and_mismatched_weights_are_refused() {
    let dir = tempdir("weights");
    let w = dir.join("w.safetensors");
    let w = w.to_str().expect("utf-8");
    let spec = "synthetic:nodes=50,edges=300,relations=3,ntypes=2,seed=2";
    let first =
        pigeon(&["run", "examples/rgcn.rgnn", "--graph", spec, "--seed", "9", "--save-weights", w]);
    assert!(first.status.success(), "{}", text(&first).1);
    // Another seed, but the weights come from the file: the outputs must be the same.
    let second =
        pigeon(&["run", "examples/rgcn.rgnn", "--graph", spec, "--seed", "9", "--weights", w]);
    assert!(second.status.success(), "{}", text(&second).1);
    let out_line =
        |o: &Output| text(o).0.lines().find(|l| l.starts_with("output")).map(str::to_string);
    assert!(out_line(&first).is_some());
    assert_eq!(out_line(&first), out_line(&second));
    // Weights of one model do not fit another.
    let wrong = pigeon(&["run", "examples/rgat.rgnn", "--graph", spec, "--weights", w]);
    let (_, err) = text(&wrong);
    assert!(!wrong.status.success());
    assert!(err.contains("q") && err.contains("missing"), "{err}");
    // Nor do they fit a graph with another number of relations.
    let other = "synthetic:nodes=50,edges=300,relations=4,ntypes=2,seed=2";
    let wrong = pigeon(&["run", "examples/rgcn.rgnn", "--graph", other, "--weights", w]);
    let (_, err) = text(&wrong);
    assert!(!wrong.status.success());
    assert!(err.contains("[3, 64, 64]") && err.contains("[4, 64, 64]"), "{err}");
}

#[test]
fn graph_info_on_aifb_prints_the_published_counts() {
    let Some(data) = datasets() else { return };
    let spec = format!("rdf:{},inverse,self-loops", data.join("aifb").display());
    let o = pigeon(&["graph", "info", &spec]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("nodes       8285"), "{out}");
    assert!(out.contains(&format!("edges       {}", 2 * 29_043 + 8285)), "{out}");
    assert!(out.contains("relations   91"), "{out}");
    assert!(out.contains("140") && out.contains("36"), "{out}");
}

#[test]
fn cpu_backend_agrees_with_the_reference_through_the_cli() {
    for model in ["rgcn", "rgat", "hgt"] {
        let file = format!("examples/{model}.rgnn");
        let o = pigeon(&[
            "run",
            &file,
            "--graph",
            "synthetic:nodes=200,edges=1500,relations=4,ntypes=2,seed=3",
            "--check",
        ]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{model}: {err}");
        let line = out
            .lines()
            .find(|l| l.starts_with("check"))
            .unwrap_or_else(|| panic!("no check line: {out}"));
        let diff: f64 = line
            .split_whitespace()
            .find_map(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("no number in `{line}`"));
        assert!(diff < 1e-4, "{model}: f32 cpu vs reference differ by {diff}");
    }
}

#[test]
fn dump_plan_and_unknown_pass() {
    let o = pigeon(&["dump", "examples/rgcn.rgnn", "--stage", "plan"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("= gemm rows"), "{out}");
    let o = pigeon(&[
        "dump",
        "examples/rgat_heads.rgnn",
        "--stage",
        "opt",
        "--after",
        "reorder-linear",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("dot-linear-to-weight"), "the report names the rule that fired: {out}");
    let o = pigeon(&["dump", "examples/rgcn.rgnn", "--stage", "plan", "--after", "nosuch"]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("no pass named `nosuch`"), "{}", text(&o).1);
}

#[test]
fn bench_writes_json_with_every_ablation() {
    let dir = tempdir("bench");
    let json = dir.join("b.json");
    let o = pigeon(&[
        "bench",
        "examples/rgat.rgnn",
        "--graph",
        "synthetic:nodes=100,edges=600,relations=3,seed=1",
        "--runs",
        "2",
        "--ablation",
        "--json",
        json.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", text(&o).1);
    let body = std::fs::read_to_string(&json).expect("json written");
    for config in ["default", "no-reorder", "no-compact", "no-fuse", "O0"] {
        assert!(body.contains(&format!("\"config\": \"{config}\"")), "{config} missing: {body}");
    }
}

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pigeon-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
