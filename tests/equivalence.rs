//! Equivalence of the optimised CPU back end with the reference interpreter: every zoo model x
//! every optimisation setting x adversarial graphs, plus random graphs (property-style, many
//! seeds). The plan verifier runs after every pass inside `pipeline::compile`.
//!
//! Tolerances: the CPU back end in f64 must agree with the f64 interpreter to 1e-9 relative to
//! the output's largest magnitude; in f32 to 2e-4 of it (f32 rounding through two or three
//! chained products of width 64).

mod common;

use common::{adversarial_graphs, compare, compile_zoo, settings, zoo};
use pigeon::passes::Options;
use pigeon::runtime::cpu::{CpuBackend, Precision};

#[test]
fn every_model_every_setting_every_adversarial_graph_in_f64() {
    let mut runs = 0;
    for (name, params) in zoo() {
        let module = compile_zoo(name, &params);
        for g in adversarial_graphs() {
            for options in settings() {
                let err = compare(&module, &g, &options, &CpuBackend::new(Precision::F64));
                assert!(
                    err <= 1e-9,
                    "{name} {params:?} on {} with {options:?}: relative error {err:e}",
                    g.name
                );
                runs += 1;
            }
        }
    }
    assert_eq!(runs, zoo().len() * adversarial_graphs().len() * settings().len());
}

#[test]
fn every_model_in_f32_on_a_skewed_synthetic_graph() {
    let g =
        pigeon::runtime::load_graph("synthetic:nodes=300,edges=3000,relations=6,ntypes=3,seed=4")
            .expect("synthetic");
    for (name, params) in zoo() {
        let module = compile_zoo(name, &params);
        for options in [Options::default(), Options::none()] {
            let err = compare(&module, &g, &options, &CpuBackend::new(Precision::F32));
            assert!(err <= 2e-4, "{name} {params:?} f32 with {options:?}: relative error {err:e}");
        }
    }
}

#[test]
fn random_graphs_property() {
    // Property-style: many random small graphs of varied shape, all optimisations on and off.
    for seed in 0..24u64 {
        let nodes = 5 + (seed * 7) % 40;
        let edges = (seed * 13) % 120;
        let relations = 1 + seed % 5;
        let ntypes = 1 + seed % 3;
        let spec = format!("synthetic:nodes={nodes},edges={edges},relations={relations},ntypes={ntypes},seed={seed}");
        let g = pigeon::runtime::load_graph(&spec).expect("synthetic");
        let (name, params) = &zoo()[(seed as usize) % zoo().len()];
        let module = compile_zoo(name, params);
        for options in [Options::default(), Options::none()] {
            let err = compare(&module, &g, &options, &CpuBackend::new(Precision::F64));
            assert!(err <= 1e-9, "{name} on {spec} with {options:?}: relative error {err:e}");
        }
    }
}
