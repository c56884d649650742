//! Every zoo model against an independent loop-by-loop formulation of its formula.
//!
//! Each model in `examples/` is compiled, its weights initialised from a seed and its inputs
//! bound, and the reference interpreter's output is compared with a direct implementation of
//! the formula in `docs/models.md`, written here with plain loops over edges and nodes (no IR,
//! no shared code with the interpreter beyond reading the same weight and input values).
//!
//! The graph has two node types, three relations, a multi-edge, two self-loops, a node whose
//! only in-edges are of one relation, a node without incoming edges and an isolated node.

use pigeon::ir::Module;
use pigeon::runtime::bind::bind_inputs;
use pigeon::runtime::graph::{HeteroGraph, Relation};
use pigeon::runtime::interp::interpret;
use pigeon::runtime::tensor::Tensor;
use pigeon::runtime::weights::WeightStore;
use std::collections::HashMap;

/// Edges `(src, dst, rel)`.
const EDGES: &[(u32, u32, u32)] = &[
    (0, 1, 0),
    (0, 1, 0), // multi-edge
    (2, 1, 1),
    (1, 1, 2), // self-loop
    (3, 0, 0),
    (4, 0, 1),
    (5, 0, 2),
    (1, 2, 0),
    (4, 2, 0),
    (0, 4, 1),
    (5, 4, 1),
    (2, 5, 2),
    (3, 3, 1), // self-loop
    (4, 5, 0),
]; // node 6 is isolated

fn test_graph() -> HeteroGraph {
    HeteroGraph {
        name: "zoo-test".into(),
        node_types: vec!["a".into(), "b".into()],
        type_offsets: vec![0, 4, 7],
        relations: (0..3)
            .map(|r| Relation { name: format!("r{r}"), src_type: None, dst_type: None })
            .collect(),
        src: EDGES.iter().map(|e| e.0).collect(),
        dst: EDGES.iter().map(|e| e.1).collect(),
        rel: EDGES.iter().map(|e| e.2).collect(),
        base_relations: 3,
        ..HeteroGraph::default()
    }
}

/// A model run through the reference interpreter, with its weights and inputs kept for the
/// independent computation.
struct Run {
    module: Module,
    weights: WeightStore,
    inputs: HashMap<String, Tensor>,
    out: Tensor,
}

impl Run {
    fn new(file: &str, params: &[(&str, i64)]) -> Run {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(file);
        let src = pigeon::read_source(&path).expect("read model");
        let params: Vec<(String, i64)> = params.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let module = pigeon::compile(&src, None, &params).unwrap_or_else(|e| panic!("{e}"));
        let g = test_graph();
        // A non-trivial seed so that no weight is accidentally symmetric.
        let mut weights = WeightStore::init(&module, g.num_relations(), g.num_node_types(), 11);
        // Zero-initialised biases would hide mistakes in how they are applied: perturb them.
        weights.perturb(0.3, 5);
        let (inputs, _) = bind_inputs(&module, &g, 3).expect("bind");
        let outs = interpret(&module, &g, &inputs, &weights).expect("interpret");
        assert_eq!(outs.len(), 1, "zoo models have one output");
        let out = outs.into_iter().next().map(|(_, t)| t).expect("one output");
        Run { module, weights, inputs: inputs.into_iter().collect(), out }
    }

    /// Weight `name`, slice `row` (0 for shared weights).
    fn w(&self, name: &str, row: usize) -> &[f64] {
        let id = self.module.weight_by_name(name).unwrap_or_else(|| panic!("no weight {name}"));
        self.weights.tensor(id).row(row)
    }

    fn input(&self, name: &str, row: usize) -> &[f64] {
        self.inputs[name].row(row)
    }

    fn check(&self, expect: &[Vec<f64>]) {
        assert_eq!(self.out.rows, expect.len());
        for (i, row) in expect.iter().enumerate() {
            let got = self.out.row(i);
            assert_eq!(got.len(), row.len(), "row {i} width");
            for (k, (&g, &e)) in got.iter().zip(row).enumerate() {
                assert!(
                    (g - e).abs() <= 1e-10 * (1.0 + e.abs()),
                    "{}: node {i} [{k}]: interpreter {g}, formula {e}",
                    self.module.name
                );
            }
        }
    }
}

// ---- small dense helpers, deliberately independent of the runtime ----

/// `x @ W` with `W` stored row-major as `[x.len(), n]`.
fn vecmat(x: &[f64], w: &[f64], n: usize) -> Vec<f64> {
    assert_eq!(w.len(), x.len() * n);
    (0..n).map(|c| (0..x.len()).map(|k| x[k] * w[k * n + c]).sum()).collect()
}
fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}
fn scale(a: &[f64], s: f64) -> Vec<f64> {
    a.iter().map(|x| x * s).collect()
}
fn dotp(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
fn leaky(x: f64, s: f64) -> f64 {
    if x > 0.0 {
        x
    } else {
        s * x
    }
}
fn elu(x: f64) -> f64 {
    if x > 0.0 {
        x
    } else {
        x.exp() - 1.0
    }
}
fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}
/// Exact GELU through an erf written independently of the runtime's (Abramowitz-Stegun 7.1.26
/// is too coarse for 1e-10, so a Taylor series for small |x| and a continued fraction beyond).
fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))
}
fn erf(x: f64) -> f64 {
    if x.abs() < 3.0 {
        // erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
        let mut sum = 0.0;
        let mut term = x; // (-1)^n x^(2n+1) / n!
        for n in 0..200 {
            let t = term / (2 * n + 1) as f64;
            sum += t;
            if t.abs() < 1e-18 {
                break;
            }
            term *= -x * x / (n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...))))
        let a = x.abs();
        let mut f = a;
        for k in (1..60).rev() {
            f = a + (k as f64 / 2.0) / f;
        }
        let erfc = (-a * a).exp() / std::f64::consts::PI.sqrt() / f;
        x.signum() * (1.0 - erfc)
    }
}

fn in_edges(i: usize) -> impl Iterator<Item = (usize, usize)> {
    EDGES.iter().filter(move |e| e.1 as usize == i).map(|e| (e.0 as usize, e.2 as usize))
}

fn ntype(n: usize) -> usize {
    if n < 4 {
        0
    } else {
        1
    }
}

/// Softmax of per-edge, per-head scores over each destination's incoming edges.
fn edge_softmax(scores: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let mut out = scores.to_vec();
    for i in 0..7 {
        let ids: Vec<usize> = (0..EDGES.len()).filter(|&e| EDGES[e].1 as usize == i).collect();
        if ids.is_empty() {
            continue;
        }
        for h in 0..scores[ids[0]].len() {
            let m = ids.iter().map(|&e| scores[e][h]).fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = ids.iter().map(|&e| (scores[e][h] - m).exp()).sum();
            for &e in &ids {
                out[e][h] = (scores[e][h] - m).exp() / z;
            }
        }
    }
    out
}

#[test]
fn rgcn_matches_rgcnconv_formula() {
    let run = Run::new("rgcn.rgnn", &[("in_dim", 5), ("out_dim", 3)]);
    let n = 3;
    let expect: Vec<Vec<f64>> = (0..7)
        .map(|i| {
            let mut acc = add(&vecmat(run.input("h", i), run.w("root", 0), n), run.w("bias", 0));
            for r in 0..3 {
                let js: Vec<usize> = in_edges(i).filter(|e| e.1 == r).map(|e| e.0).collect();
                for &j in &js {
                    acc = add(
                        &acc,
                        &scale(&vecmat(run.input("h", j), run.w("W", r), n), 1.0 / js.len() as f64),
                    );
                }
            }
            acc
        })
        .collect();
    run.check(&expect);
}

#[test]
fn rgcn2_is_two_rgcnconv_layers_with_relu() {
    let run = Run::new("rgcn2.rgnn", &[("in_dim", 4), ("hidden", 3), ("classes", 2)]);
    let layer = |x: &[Vec<f64>], p: &str, n: usize| -> Vec<Vec<f64>> {
        (0..7)
            .map(|i| {
                let mut acc = add(
                    &vecmat(&x[i], run.w(&format!("{p}.root"), 0), n),
                    run.w(&format!("{p}.bias"), 0),
                );
                for r in 0..3 {
                    let js: Vec<usize> = in_edges(i).filter(|e| e.1 == r).map(|e| e.0).collect();
                    for &j in &js {
                        acc = add(
                            &acc,
                            &scale(
                                &vecmat(&x[j], run.w(&format!("{p}.W"), r), n),
                                1.0 / js.len() as f64,
                            ),
                        );
                    }
                }
                acc
            })
            .collect()
    };
    let x: Vec<Vec<f64>> = (0..7).map(|i| run.input("h", i).to_vec()).collect();
    let h1: Vec<Vec<f64>> = layer(&x, "l1", 3)
        .into_iter()
        .map(|r| r.into_iter().map(|v| v.max(0.0)).collect())
        .collect();
    run.check(&layer(&h1, "l2", 2));
}

#[test]
fn rgcn_entity_reads_one_table_row_per_source_and_relation() {
    let run = Run::new("rgcn_entity.rgnn", &[("hidden", 3), ("classes", 2)]);
    // The table's rows are the (relation, source) pairs among the edges, in sorted order.
    let mut pairs: Vec<(usize, usize)> =
        EDGES.iter().map(|e| (e.2 as usize, e.0 as usize)).collect();
    pairs.sort();
    pairs.dedup();
    assert_eq!(run.inputs["l1.W"].rows, pairs.len());
    let row = |r: usize, j: usize| pairs.iter().position(|&p| p == (r, j)).expect("pair");
    let h1: Vec<Vec<f64>> = (0..7)
        .map(|i| {
            let mut acc = add(run.input("l1.root", i), run.w("l1.bias", 0));
            for r in 0..3 {
                let js: Vec<usize> = in_edges(i).filter(|e| e.1 == r).map(|e| e.0).collect();
                for &j in &js {
                    acc = add(&acc, &scale(run.input("l1.W", row(r, j)), 1.0 / js.len() as f64));
                }
            }
            acc.into_iter().map(|v| v.max(0.0)).collect()
        })
        .collect();
    let expect: Vec<Vec<f64>> = (0..7)
        .map(|i| {
            let mut acc = add(&vecmat(&h1[i], run.w("l2.root", 0), 2), run.w("l2.bias", 0));
            for r in 0..3 {
                let js: Vec<usize> = in_edges(i).filter(|e| e.1 == r).map(|e| e.0).collect();
                for &j in &js {
                    let m = vecmat(&h1[j], run.w("l2.W", r), 2);
                    acc = add(&acc, &scale(&m, 1.0 / js.len() as f64));
                }
            }
            acc
        })
        .collect();
    run.check(&expect);
}

#[test]
fn rgat_matches_rgatconv_formula() {
    let (heads, c) = (2, 3);
    let f = heads * c;
    let run =
        Run::new("rgat.rgnn", &[("in_dim", 4), ("out_dim", f as i64), ("heads", heads as i64)]);
    let g: Vec<(Vec<f64>, Vec<f64>)> = EDGES
        .iter()
        .map(|&(j, i, r)| {
            (
                vecmat(run.input("h", i as usize), run.w("W", r as usize), f),
                vecmat(run.input("h", j as usize), run.w("W", r as usize), f),
            )
        })
        .collect();
    let scores: Vec<Vec<f64>> = g
        .iter()
        .map(|(gi, gj)| {
            add(&vecmat(gi, run.w("q", 0), heads), &vecmat(gj, run.w("k", 0), heads))
                .into_iter()
                .map(|a| leaky(a, 0.2))
                .collect()
        })
        .collect();
    let alpha = edge_softmax(&scores);
    let expect: Vec<Vec<f64>> = (0..7)
        .map(|i| {
            let mut acc = run.w("bias", 0).to_vec();
            for e in (0..EDGES.len()).filter(|&e| EDGES[e].1 as usize == i) {
                for h in 0..heads {
                    for k in 0..c {
                        acc[h * c + k] += alpha[e][h] * g[e].1[h * c + k];
                    }
                }
            }
            acc
        })
        .collect();
    run.check(&expect);
}

#[test]
fn hgt_matches_hgtconv_formula() {
    let (heads, d) = (2, 2);
    let f = heads * d;
    let run = Run::new(
        "hgt.rgnn",
        &[("in_dim", f as i64), ("out_dim", f as i64), ("heads", heads as i64)],
    );
    let proj = |w: &str, b: &str, n: usize| {
        add(&vecmat(run.input("h", n), run.w(w, ntype(n)), f), run.w(b, ntype(n)))
    };
    let kk: Vec<Vec<f64>> = (0..7).map(|n| proj("Wk", "bk", n)).collect();
    let qq: Vec<Vec<f64>> = (0..7).map(|n| proj("Wq", "bq", n)).collect();
    let vv: Vec<Vec<f64>> = (0..7).map(|n| proj("Wv", "bv", n)).collect();
    // Per-head D x D matrices: k_rel[r] is [heads, d, d].
    let per_head = |x: &[f64], m: &[f64]| -> Vec<f64> {
        (0..heads)
            .flat_map(|h| vecmat(&x[h * d..(h + 1) * d], &m[h * d * d..(h + 1) * d * d], d))
            .collect()
    };
    let kr: Vec<Vec<f64>> = EDGES
        .iter()
        .map(|&(j, _, r)| per_head(&kk[j as usize], run.w("k_rel", r as usize)))
        .collect();
    let vr: Vec<Vec<f64>> = EDGES
        .iter()
        .map(|&(j, _, r)| per_head(&vv[j as usize], run.w("v_rel", r as usize)))
        .collect();
    let scores: Vec<Vec<f64>> = EDGES
        .iter()
        .enumerate()
        .map(|(e, &(_, i, r))| {
            (0..heads)
                .map(|h| {
                    dotp(&qq[i as usize][h * d..(h + 1) * d], &kr[e][h * d..(h + 1) * d])
                        * run.w("p_rel", r as usize)[h]
                        / (d as f64).sqrt()
                })
                .collect()
        })
        .collect();
    let alpha = edge_softmax(&scores);
    let expect: Vec<Vec<f64>> = (0..7)
        .map(|i| {
            let mut agg = vec![0.0; f];
            for e in (0..EDGES.len()).filter(|&e| EDGES[e].1 as usize == i) {
                for h in 0..heads {
                    for k in 0..d {
                        agg[h * d + k] += alpha[e][h] * vr[e][h * d + k];
                    }
                }
            }
            let act: Vec<f64> = agg.iter().map(|&x| gelu(x)).collect();
            let o = add(&vecmat(&act, run.w("Wout", ntype(i)), f), run.w("bout", ntype(i)));
            let s = sigmoid(run.w("skip", ntype(i))[0]);
            add(&scale(&o, s), &scale(run.input("h", i), 1.0 - s))
        })
        .collect();
    run.check(&expect);
}

#[test]
fn rgat_heads_matches_its_formula() {
    let (heads, d) = (3, 2);
    let run = Run::new(
        "rgat_heads.rgnn",
        &[("in_dim", 4), ("out_dim", (heads * d) as i64), ("heads", heads as i64)],
    );
    let f = heads * d;
    let z: Vec<Vec<f64>> = EDGES
        .iter()
        .map(|&(j, _, r)| vecmat(run.input("h", j as usize), run.w("W", r as usize), f))
        .collect();
    let zi: Vec<Vec<f64>> = EDGES
        .iter()
        .map(|&(_, i, r)| vecmat(run.input("h", i as usize), run.w("W", r as usize), f))
        .collect();
    let scores: Vec<Vec<f64>> = EDGES
        .iter()
        .enumerate()
        .map(|(e, &(_, _, r))| {
            let (a_s, a_d) = (run.w("a_src", r as usize), run.w("a_dst", r as usize));
            (0..heads)
                .map(|h| {
                    leaky(
                        dotp(&z[e][h * d..(h + 1) * d], &a_s[h * d..(h + 1) * d])
                            + dotp(&zi[e][h * d..(h + 1) * d], &a_d[h * d..(h + 1) * d]),
                        0.2,
                    )
                })
                .collect()
        })
        .collect();
    let alpha = edge_softmax(&scores);
    let expect: Vec<Vec<f64>> = (0..7)
        .map(|i| {
            let mut acc = vec![0.0; f];
            for e in (0..EDGES.len()).filter(|&e| EDGES[e].1 as usize == i) {
                for k in 0..f {
                    acc[k] += alpha[e][k / d] * z[e][k];
                }
            }
            acc.into_iter().map(elu).collect()
        })
        .collect();
    run.check(&expect);
}

#[test]
fn simplehgn_matches_its_formula() {
    let (heads, d, edim) = (2, 2, 4);
    let f = heads * d;
    let run = Run::new(
        "simplehgn.rgnn",
        &[("in_dim", 3), ("out_dim", f as i64), ("heads", heads as i64), ("edge_dim", edim as i64)],
    );
    let de = edim / heads;
    let wx: Vec<Vec<f64>> = (0..7).map(|n| vecmat(run.input("h", n), run.w("W", 0), f)).collect();
    let re: Vec<Vec<f64>> =
        (0..3).map(|r| vecmat(run.w("r_emb", r), run.w("W_r", 0), edim)).collect();
    let (al, ar, ae) = (run.w("a_l", 0), run.w("a_r", 0), run.w("a_e", 0));
    let scores: Vec<Vec<f64>> = EDGES
        .iter()
        .map(|&(j, i, r)| {
            (0..heads)
                .map(|h| {
                    let s = dotp(&al[h * d..(h + 1) * d], &wx[i as usize][h * d..(h + 1) * d])
                        + dotp(&ar[h * d..(h + 1) * d], &wx[j as usize][h * d..(h + 1) * d])
                        + dotp(&ae[h * de..(h + 1) * de], &re[r as usize][h * de..(h + 1) * de]);
                    leaky(s, 0.2)
                })
                .collect()
        })
        .collect();
    let alpha = edge_softmax(&scores);
    let expect: Vec<Vec<f64>> = (0..7)
        .map(|i| {
            let mut acc = vecmat(run.input("h", i), run.w("W_res", 0), f);
            for e in (0..EDGES.len()).filter(|&e| EDGES[e].1 as usize == i) {
                for k in 0..f {
                    acc[k] += alpha[e][k / d] * wx[EDGES[e].0 as usize][k];
                }
            }
            acc.into_iter().map(elu).collect()
        })
        .collect();
    run.check(&expect);
}

#[test]
fn rgin_matches_its_formula() {
    let run = Run::new("rgin.rgnn", &[("in_dim", 3), ("hidden", 4), ("out_dim", 2)]);
    let eps = run.w("eps", 0)[0];
    let expect: Vec<Vec<f64>> = (0..7)
        .map(|i| {
            let mut agg = scale(&vecmat(run.input("h", i), run.w("root", 0), 4), 1.0 + eps);
            for (j, r) in in_edges(i) {
                agg = add(&agg, &vecmat(run.input("h", j), run.w("W", r), 4));
            }
            let hid: Vec<f64> = add(&vecmat(&agg, run.w("W1", 0), 4), run.w("b1", 0))
                .into_iter()
                .map(|v| v.max(0.0))
                .collect();
            add(&vecmat(&hid, run.w("W2", 0), 2), run.w("b2", 0))
        })
        .collect();
    run.check(&expect);
}

#[test]
fn rsage_matches_its_formula() {
    let run = Run::new("rsage.rgnn", &[("in_dim", 3), ("pool_dim", 4), ("out_dim", 2)]);
    let expect: Vec<Vec<f64>> = (0..7)
        .map(|i| {
            let msgs: Vec<Vec<f64>> = in_edges(i)
                .map(|(j, r)| {
                    add(&vecmat(run.input("h", j), run.w("W", r), 4), run.w("b", r))
                        .into_iter()
                        .map(|v| v.max(0.0))
                        .collect()
                })
                .collect();
            let pooled: Vec<f64> = if msgs.is_empty() {
                vec![0.0; 4]
            } else {
                (0..4)
                    .map(|k| msgs.iter().map(|m| m[k]).fold(f64::NEG_INFINITY, f64::max))
                    .collect()
            };
            let mut cat = run.input("h", i).to_vec();
            cat.extend(pooled);
            vecmat(&cat, run.w("W_out", 0), 2)
        })
        .collect();
    run.check(&expect);
}

#[test]
fn every_zoo_file_has_a_formula_test() {
    // A new model in examples/ must get a test above: this list must name every file.
    let tested =
        ["hgt", "rgat", "rgat_heads", "rgcn", "rgcn2", "rgcn_entity", "rgin", "rsage", "simplehgn"];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .expect("examples/")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rgnn"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    found.sort();
    assert_eq!(found, tested);
}
