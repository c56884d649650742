//! End-to-end tests of the `pigeon` binary: exit codes, summaries and files written, including
//! `pigeon train`, `eval` and `grad` (a checkpoint evaluates to the accuracy training reported).

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

fn aifb() -> Option<String> {
    datasets().map(|d| format!("rdf:{}/aifb,inverse,self-loops", d.display()))
}

/// The test accuracy in a line like `... test 88.89% ...`.
fn test_acc(line: &str) -> Option<f64> {
    let rest = line.split(" test ").nth(1)?;
    rest.split('%').next()?.trim().parse().ok()
}

#[test]
fn train_writes_metrics_curve_and_a_checkpoint_that_evaluates_the_same() {
    let Some(graph) = aifb() else { return };
    let dir = tempdir("ckpt");
    let (csv, svg, ck) = (dir.join("m.csv"), dir.join("c.svg"), dir.join("ck"));
    let o = pigeon(&[
        "train",
        "examples/rgcn2.rgnn",
        "--graph",
        &graph,
        "--epochs",
        "30",
        "--seed",
        "3",
        "--metrics",
        csv.to_str().unwrap(),
        "--curve",
        svg.to_str().unwrap(),
        "--checkpoint",
        ck.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("input `h`: the graph has no such feature; learned"), "{out}");
    let report = out.lines().find(|l| l.starts_with("seed 3:")).expect("final report");
    let trained = test_acc(report).expect("test accuracy");
    // 36 test entities; a model that learned nothing is near 40% (the largest class).
    assert!(trained > 75.0, "{report}");

    let rows: Vec<String> =
        std::fs::read_to_string(&csv).unwrap().lines().map(String::from).collect();
    assert_eq!(rows[0], "epoch,loss,train_acc,valid_acc,test_acc,seconds");
    assert_eq!(rows.len(), 31, "one row per epoch");
    let loss = |r: &str| r.split(',').nth(1).unwrap().parse::<f64>().unwrap();
    assert!(loss(&rows[30]) < 0.2 * loss(&rows[1]), "loss {} -> {}", rows[1], rows[30]);
    let curve = std::fs::read_to_string(&svg).unwrap();
    assert!(curve.starts_with("<svg") && curve.contains("polyline"), "not an SVG curve");

    let o = pigeon(&[
        "eval",
        "examples/rgcn2.rgnn",
        "--graph",
        &graph,
        "--checkpoint",
        ck.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    // The checkpoint is saved in f32; 36 test entities make accuracy steps of 2.78%.
    assert_eq!(test_acc(&out), Some(trained), "eval: {out} vs train: {report}");
}

#[test]
fn train_refuses_unlabelled_graphs_and_bad_options() {
    let o = pigeon(&[
        "train",
        "examples/rgcn2.rgnn",
        "--graph",
        "synthetic:nodes=20,edges=60,relations=2",
        "--epochs",
        "2",
    ]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("has no node labels"), "{err}");
    let Some(graph) = aifb() else { return };
    let o = pigeon(&["train", "examples/rgcn2.rgnn", "--graph", &graph, "--epochs", "0"]);
    assert!(!o.status.success() && text(&o).1.contains("--epochs"), "{}", text(&o).1);
    // A classifier whose output width is not the number of classes.
    let o = pigeon(&[
        "train",
        "examples/rgcn.rgnn",
        "--graph",
        &graph,
        "--epochs",
        "1",
        "--param",
        "out_dim=5",
    ]);
    let (_, err) = text(&o);
    assert!(!o.status.success() && err.contains("needs node [4]"), "{err}");
    let o = pigeon(&[
        "eval",
        "examples/rgcn2.rgnn",
        "--graph",
        &graph,
        "--checkpoint",
        "/nonexistent/ck",
    ]);
    let (_, err) = text(&o);
    assert!(!o.status.success() && err.contains("weights.safetensors"), "{err}");
}

/// A small multi-label graph in the HGB format (as IMDB): 12 movies and 8 people, movie ->
/// person and person -> movie links, 3 classes, movies 0-7 for training and 8-11 for testing.
fn tiny_hgb(dir: &std::path::Path) -> String {
    std::fs::create_dir_all(dir).expect("hgb dir");
    let meta = r#"{
 "Node Total": 20,
 "Node Type_0": 12,
 "Node Type_1": 8,
 "Edge Type_0": 24,
 "Edge Type_1": 24
}
"#;
    std::fs::write(dir.join("meta.dat"), meta).expect("meta.dat");
    let mut links = String::new();
    for m in 0..12u32 {
        for p in [12 + m % 8, 12 + (m * 3 + 1) % 8] {
            links.push_str(&format!("{m}\t{p}\t0\t1\n{p}\t{m}\t1\t1\n"));
        }
    }
    std::fs::write(dir.join("link.dat"), links).expect("link.dat");
    let sets = ["0", "1,2", "2", "0,1", "1", "0,2", "2,1,0", "1"];
    let label = |m: u32| format!("{m}\tmovie{m}\t0\t{}\n", sets[m as usize % sets.len()]);
    std::fs::write(dir.join("label.dat"), (0..8).map(label).collect::<String>()).expect("train");
    std::fs::write(dir.join("label.dat.test"), (8..12).map(label).collect::<String>())
        .expect("test");
    format!("hgb:{}", dir.display())
}

/// The percentage after `name ` in a line like `... test micro-F1 61.20% macro-F1 ...`.
fn percent_after(line: &str, name: &str) -> Option<f64> {
    let rest = line.split(&format!("{name} ")).nth(1)?;
    rest.split('%').next()?.trim().parse().ok()
}

#[test]
fn train_on_a_multi_label_graph_reports_f1_and_its_checkpoint_evaluates_the_same() {
    let dir = tempdir("multi");
    let graph = tiny_hgb(&dir.join("hgb"));
    let (csv, svg, ck) = (dir.join("m.csv"), dir.join("c.svg"), dir.join("ck"));
    let o = pigeon(&[
        "train",
        "examples/rgcn2.rgnn",
        "--graph",
        &graph,
        "--epochs",
        "40",
        "--repeat",
        "2",
        "--metrics",
        csv.to_str().unwrap(),
        "--curve",
        svg.to_str().unwrap(),
        "--checkpoint",
        ck.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("8 train / 0 valid / 4 test labels"), "{out}");
    let report = out.lines().find(|l| l.starts_with("seed 0:")).expect("final report");
    let test = report.split("  test ").nth(1).expect("test measures");
    let (micro, macro_) = (percent_after(test, "micro-F1"), percent_after(test, "macro-F1"));
    for f in [micro, macro_, percent_after(report, "train micro-F1")] {
        assert!(f.is_some_and(|f| (0.0..=100.0).contains(&f)), "{report}");
    }
    for measure in ["micro-F1", "macro-F1"] {
        assert!(out.contains(&format!("test {measure} over 2 seeds: mean ")), "{out}");
    }

    let rows: Vec<String> =
        std::fs::read_to_string(&csv).unwrap().lines().map(String::from).collect();
    assert_eq!(
        rows[0],
        "epoch,loss,train_micro_f1,train_macro_f1,valid_micro_f1,valid_macro_f1,\
         test_micro_f1,test_macro_f1,seconds"
    );
    assert_eq!(rows.len(), 41, "one row per epoch");
    let cell = |r: &str, i: usize| r.split(',').nth(i).unwrap().parse::<f64>().unwrap();
    assert!(cell(&rows[40], 1) < 0.5 * cell(&rows[1], 1), "loss {} -> {}", rows[1], rows[40]);
    // Learned node embeddings fit the 8 training movies.
    assert!(cell(&rows[40], 2) > 0.9, "train micro-F1: {}", rows[40]);
    assert!(rows[40].contains(",,,"), "no validation split: empty cells: {}", rows[40]);
    let curve = std::fs::read_to_string(&svg).unwrap();
    assert!(curve.contains("test macro-F1") && curve.contains("polyline"), "not an F1 curve");

    let o = pigeon(&[
        "eval",
        "examples/rgcn2.rgnn",
        "--graph",
        &graph,
        "--checkpoint",
        ck.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let test = out.split("  test ").nth(1).expect("eval test measures");
    assert_eq!(
        (percent_after(test, "micro-F1"), percent_after(test, "macro-F1")),
        (micro, macro_),
        "eval: {out} vs train: {report}"
    );
}

#[test]
fn grad_writes_one_gradient_per_weight() {
    let dir = tempdir("grad");
    let g = "synthetic:nodes=30,edges=120,relations=3,seed=4";
    let model = |cmd: &str, more: &[&str]| {
        let mut args = vec![cmd, "examples/rgcn.rgnn", "--graph", g, "--param", "in_dim=4"];
        args.extend_from_slice(&["--param", "out_dim=3"]);
        args.extend_from_slice(more);
        pigeon(&args)
    };
    let (out, grads) = (dir.join("out.safetensors"), dir.join("grads.safetensors"));
    let (out, grads) = (out.to_str().unwrap(), grads.to_str().unwrap());
    let o = model("run", &["--backend", "reference", "--output", out]);
    assert!(o.status.success(), "{}", text(&o).1);
    // The outputs themselves as the cotangent: the gradient of sum(out^2) / 2.
    let o = model("grad", &["--cotangent", out, "-o", grads]);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(stdout.contains("3 weight gradients"), "{stdout}");
    // The file loads as weights of the model (names and shapes of a weights file).
    let o = model("run", &["--backend", "reference", "--weights", grads]);
    assert!(o.status.success(), "{}", text(&o).1);
    // A cotangent for an output the model does not have is refused.
    let o = pigeon(&["grad", "examples/rgat.rgnn", "--graph", g, "--cotangent", out, "-o", grads]);
    assert!(!o.status.success());
}

#[test]
fn link_prediction_repeats_seeds_and_its_checkpoint_ranks_the_same() {
    let Some(d) = datasets() else { return };
    let graph = format!("triples:{}/tiny/nations,inverse", d.display());
    let dir = tempdir("link");
    let ck = dir.join("ck");
    let ck = ck.to_str().expect("utf-8 path");
    let model = ["--param", "in_dim=8", "--param", "hidden=8", "--param", "classes=8"];
    let mut args = vec!["train", "examples/rgcn2.rgnn", "--graph", &graph];
    args.extend(model);
    args.extend(["--epochs", "20", "--lr", "0.05", "--weight-decay", "0", "--repeat", "2"]);
    args.extend(["--checkpoint", ck]);
    let o = pigeon(&args);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let tests: Vec<&str> = out.lines().filter(|l| l.starts_with("test: filtered MRR")).collect();
    assert_eq!(tests.len(), 2, "one ranking per seed: {out}");
    assert!(out.contains("test over 2 seeds: filtered MRR mean"), "{out}");
    for file in ["weights.safetensors", "inputs.safetensors", "extra.safetensors"] {
        assert!(dir.join("ck").join(file).is_file(), "{file} missing");
    }
    // The checkpoint is the first seed's: evaluating it ranks exactly as that run did.
    let mut args = vec!["eval", "examples/rgcn2.rgnn", "--graph", &graph, "--checkpoint", ck];
    args.extend(model);
    let o = pigeon(&args);
    let (out2, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let mrr = |l: &str| l.split(" (").next().map(str::to_string);
    let again: Vec<&str> = out2.lines().filter(|l| l.starts_with("test: filtered MRR")).collect();
    assert_eq!(again.len(), 1, "{out2}");
    assert_eq!(mrr(again[0]), mrr(tests[0]), "{out}\n{out2}");
    let _ = std::fs::remove_dir_all(&dir);
}
