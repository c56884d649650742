//! Training on optimised plans against training on the reference interpreter: the same model,
//! graph, seed and options, stepped with forward and backward plans on the CPU back end (f64,
//! every optimisation on) and with the f64 interpreter, gives the same loss and accuracies at
//! every step, so the optimiser updates agree too.

mod common;

use common::{adversarial_graphs, compile_zoo};
use pigeon::runtime::cpu::Precision;
use pigeon::runtime::graph::Labels;
use pigeon::runtime::optim::Optimizer;
use pigeon::train::{TrainOptions, Trainer};

/// Losses and accuracies of `steps` training steps of zoo model `name` with `params`.
fn run(
    name: &str,
    params: &[(String, i64)],
    graph: &pigeon::runtime::graph::HeteroGraph,
    plans: bool,
    steps: usize,
) -> Vec<[f64; 3]> {
    let module = compile_zoo(name, params);
    let opts = TrainOptions {
        lr: 0.05,
        weight_decay: 5e-4,
        optimizer: Optimizer::Adam,
        seed: 4,
        output: None,
        learn_inputs: true,
        plans: plans.then(|| (pigeon::passes::Options::default(), Precision::F64)),
    };
    let mut trainer = Trainer::new(module, graph, &opts, None).expect("trainer");
    (0..steps)
        .map(|_| {
            let m = trainer.step().expect("step");
            [m.loss, m.train_acc.unwrap_or(-1.0), m.test_acc.unwrap_or(-1.0)]
        })
        .collect()
}

#[test]
fn training_on_cpu_plans_follows_the_reference_step_by_step() {
    let mut graph = adversarial_graphs().remove(0);
    let n = graph.num_nodes() as u32;
    graph.labels = Some(Labels {
        class_names: vec!["a".into(), "b".into(), "c".into()],
        multi_label: false,
        assignments: (0..n).map(|v| (v, v % 3)).collect(),
        train: (0..n).filter(|v| v % 2 == 0).collect(),
        valid: Vec::new(),
        test: (0..n).filter(|v| v % 2 == 1).collect(),
    });
    let p = |kv: &[(&str, i64)]| kv.iter().map(|(k, v)| (k.to_string(), *v)).collect::<Vec<_>>();
    // rgcn2 learns its input as an embedding; rgcn_entity learns per-(node, relation) tables.
    for (name, params) in [
        ("rgcn2", p(&[("in_dim", 6), ("hidden", 4), ("classes", 3)])),
        ("rgcn_entity", p(&[("hidden", 4), ("classes", 3)])),
    ] {
        let want = run(name, &params, &graph, false, 12);
        let got = run(name, &params, &graph, true, 12);
        assert!(
            want[11][0] < 0.8 * want[0][0],
            "{name}: the reference run does not learn: {want:?}"
        );
        for (step, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g[0] - w[0]).abs() <= 1e-9 * w[0].abs().max(1.0),
                "{name} step {step}: loss {g:?} vs {w:?}"
            );
            assert_eq!(g[1..], w[1..], "{name} step {step}: accuracies");
        }
    }
}
