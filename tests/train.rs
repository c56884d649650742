//! End-to-end tests of `pigeon train`, `pigeon eval` and `pigeon grad`: files written, a
//! checkpoint that evaluates to the accuracy training reported, learning on a real graph, and
//! clear errors.

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

fn aifb() -> Option<String> {
    let dir = std::env::var_os("PIGEON_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/datasets"));
    if dir.join("aifb").is_dir() {
        Some(format!("rdf:{}/aifb,inverse,self-loops", dir.display()))
    } else {
        eprintln!("skipped: datasets not found at {} (set PIGEON_DATASETS)", dir.display());
        None
    }
}

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pigeon-train-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tempdir");
    dir
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

#[test]
fn grad_writes_one_gradient_per_weight() {
    let dir = tempdir("grad");
    let g = "synthetic:nodes=30,edges=120,relations=3,seed=4";
    let (out, cot) = (dir.join("out.safetensors"), dir.join("cot.safetensors"));
    let o = pigeon(&[
        "run",
        "examples/rgcn.rgnn",
        "--graph",
        g,
        "--backend",
        "reference",
        "--param",
        "in_dim=4",
        "--param",
        "out_dim=3",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o).1);
    let grads = dir.join("grads.safetensors");
    // The outputs themselves as the cotangent: the gradient of sum(out^2) / 2.
    let o = pigeon(&[
        "grad",
        "examples/rgcn.rgnn",
        "--graph",
        g,
        "--param",
        "in_dim=4",
        "--param",
        "out_dim=3",
        "--cotangent",
        out.to_str().unwrap(),
        "-o",
        grads.to_str().unwrap(),
    ]);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(stdout.contains("3 weight gradients"), "{stdout}");
    let _ = cot;
    // The file loads as weights of the model (names and shapes of a weights file).
    let o = pigeon(&[
        "run",
        "examples/rgcn.rgnn",
        "--graph",
        g,
        "--backend",
        "reference",
        "--param",
        "in_dim=4",
        "--param",
        "out_dim=3",
        "--weights",
        grads.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o).1);
}
