//! Tests of the traversal template: every zoo model under every optimisation switch generates;
//! a snapshot of RGAT's traversals; the pass split of RGAT checked by hand; host models of the
//! lane arithmetic of the cross-lane dot product.

use super::{passes, regs};
use crate::writer::Writer;
use crate::CodegenError;
use pigeon_ir::plan::{Kernel, Plan};
use pigeon_ir::GraphStats;

/// Every zoo model: the `.rgnn` files of `examples/`.
fn models() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let names = pigeon_frontend::model_files(std::path::Path::new(dir)).expect("examples/");
    assert!(names.len() >= 9, "the zoo shrank: {names:?}");
    names
}

fn stats() -> GraphStats {
    GraphStats {
        nodes: 8_285,
        edges: 66_371,
        relations: 91,
        node_types: 1,
        compact_src_rows: 30_000,
        compact_dst_rows: 30_000,
        max_in_degree: 1_248,
        typed_relations: false,
    }
}

/// The plan of zoo model `name` with the given switches and `heads` (when the model has it).
pub(super) fn plan(
    name: &str,
    options: pigeon_passes::Options,
    heads: Option<i64>,
) -> Result<Plan, String> {
    let path = format!("{}/../examples/{name}.rgnn", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let src = pigeon_frontend::SourceFile { name: path, text };
    let params: Vec<(String, i64)> = heads.map(|h| ("heads".to_string(), h)).into_iter().collect();
    let module = pigeon_frontend::compile(&src, None, &params).map_err(|d| format!("{d:?}"))?;
    let compiled = pigeon_passes::pipeline::compile(&module, &stats(), &options, None)
        .map_err(|e| format!("{e:?}"))?;
    compiled.plan.ok_or_else(|| "no plan".to_string())
}

/// The traversal kernels of `plan`, generated one after the other.
fn traversals(plan: &Plan) -> Result<String, CodegenError> {
    let mut w = Writer::new();
    for (id, k) in plan.kernels.iter() {
        if let Kernel::Traversal(t) = k {
            let name = format!("traversal_{}_{}", plan.name, pigeon_ir::EntityId::index(id));
            super::emit(&mut w, plan, id, t, &name)?;
            w.blank();
        }
    }
    Ok(w.finish())
}

fn all_options() -> Vec<pigeon_passes::Options> {
    (0..8)
        .map(|b| pigeon_passes::Options {
            reorder: b & 1 != 0,
            compact: b & 2 != 0,
            fuse: b & 4 != 0,
        })
        .collect()
}

fn has_heads(name: &str) -> bool {
    let path = format!("{}/../examples/{name}.rgnn", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).map(|t| t.contains("heads")).unwrap_or(false)
}

#[test]
fn every_zoo_model_generates_under_every_switch() {
    let mut failures = Vec::new();
    let mut count = 0;
    let dump = std::env::var("PIGEON_TRAVERSAL_CU_DIR").ok();
    for model in &models() {
        let heads: Vec<Option<i64>> =
            if has_heads(model) { vec![Some(1), Some(4)] } else { vec![None] };
        for h in heads {
            for (o, options) in all_options().into_iter().enumerate() {
                let what = format!("{model} heads={h:?} options={options:?}");
                let p = match plan(model, options, h) {
                    Ok(p) => p,
                    Err(e) => {
                        failures.push(format!("{what}: plan: {e}"));
                        continue;
                    }
                };
                match traversals(&p) {
                    Ok(src) => {
                        count += 1;
                        if let Some(dir) = &dump {
                            let file = format!("{dir}/{model}_h{}_o{o}.cu", h.unwrap_or(0));
                            let text = format!("{}\n{src}", crate::COMMON_CUH);
                            let plan_file = file.replace(".cu", ".plan");
                            let wrote = std::fs::write(&file, text)
                                .and_then(|_| std::fs::write(&plan_file, p.to_string()));
                            if let Err(e) = wrote {
                                failures.push(format!("{file}: {e}"));
                            }
                        }
                    }
                    Err(e) => failures.push(format!("{what}: {e}")),
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // rgat, rgat_heads, hgt and simplehgn have `heads`: two settings each.
    assert_eq!(count, 8 * (models().len() + 4));
}

#[test]
fn rgat_traversals_snapshot() {
    let p = plan("rgat", pigeon_passes::Options::default(), Some(1));
    let src = p.map_err(CodegenError::Internal).and_then(|p| traversals(&p));
    insta::assert_snapshot!("rgat_traversals", src.unwrap_or_else(|e| e.to_string()));
}

#[test]
fn rgat_heads_node_parallel_snapshot() {
    let p = plan("rgat", pigeon_passes::Options::default(), Some(4));
    let src = p.map_err(CodegenError::Internal).and_then(|p| {
        let (id, t) = p
            .kernels
            .iter()
            .find_map(|(id, k)| match k {
                Kernel::Traversal(t) if t.schedule == pigeon_ir::plan::Schedule::NodeParallel => {
                    Some((id, t.clone()))
                }
                _ => None,
            })
            .ok_or_else(|| CodegenError::Internal("no node-parallel kernel".into()))?;
        let mut w = Writer::new();
        super::emit(&mut w, &p, id, &t, "traversal_rgat_heads4")?;
        Ok(w.finish())
    });
    insta::assert_snapshot!("rgat_heads4_node_parallel", src.unwrap_or_else(|e| e.to_string()));
}

/// The node-parallel kernel of a plan.
pub(super) fn node_parallel(p: &Plan) -> Option<pigeon_ir::plan::Traversal> {
    p.kernels.iter().find_map(|(_, k)| match k {
        Kernel::Traversal(t) if t.schedule == pigeon_ir::plan::Schedule::NodeParallel => {
            Some(t.clone())
        }
        _ => None,
    })
}

#[test]
fn rgat_splits_into_a_softmax_loop_and_an_aggregation_loop() {
    // k4 of RGAT (see `pigeon dump examples/rgat.rgnn --stage plan`):
    //   r0..r3 the score (edge), r4 softmax r3, r5 load, r6 = r4 * r5, r7 aggregate sum r6,
    //   r8 view, r9 node load, r10 add, r11 node store.
    let t = plan("rgat", pigeon_passes::Options::default(), Some(1))
        .ok()
        .and_then(|p| node_parallel(&p).map(|t| (p, t)));
    let Some((p, t)) = t else { panic!("no rgat node-parallel kernel") };
    let regs = regs::analyze(&p, &t);
    let Ok(regs) = regs else { panic!("{regs:?}") };
    let split = passes::split(&t, &regs);
    assert_eq!(split.ready, vec![0, 0, 0, 0, 1, 0, 1, 2, 2, 0, 2, 2]);
    let marked =
        |p: usize| -> Vec<usize> { (0..t.body.len()).filter(|&i| split.evaluated[p][i]).collect() };
    assert_eq!(split.evaluated.len(), 2);
    assert_eq!(marked(0), vec![0, 1, 2, 3]);
    assert_eq!(marked(1), vec![0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(split.reductions, vec![vec![4], vec![7]]);
    assert!(split.live.iter().all(|l| *l));
}

#[test]
fn bodies_the_cpu_rejects_are_internal_errors() {
    let Ok(p) = plan("rgat", pigeon_passes::Options::default(), Some(1)) else {
        panic!("no rgat plan")
    };
    let Some(mut t) = node_parallel(&p) else { panic!("no node-parallel kernel") };
    // Node-level statements (and softmax) outside a node-parallel traversal.
    t.schedule = pigeon_ir::plan::Schedule::EdgeParallel;
    let mut w = Writer::new();
    let id = pigeon_ir::EntityId::new(0);
    let got = super::emit(&mut w, &p, id, &t, "k");
    assert!(matches!(got, Err(CodegenError::Internal(m)) if m.starts_with("r4: softmax")));
    // An operand defined later.
    let Some(mut t) = node_parallel(&p) else { panic!("no node-parallel kernel") };
    t.body[2].op = pigeon_ir::plan::StmtOp::Unary {
        op: pigeon_ir::UnaryOp::Relu,
        x: pigeon_ir::EntityId::new(5),
    };
    let got = super::emit(&mut w, &p, id, &t, "k");
    assert!(matches!(got, Err(CodegenError::Internal(m)) if m.contains("before its definition")));
}

/// A host model of `dot_segments`: `G` lanes, products summed by xor shuffles within aligned
/// runs of `K` lanes, output `o` fetched from lane `(o K) % G`, slot `(o K) / G`.
fn dot_segments_model(g: usize, o: usize, k: usize, a: &[f64], b: &[f64]) -> Vec<f64> {
    let si = (o * k).div_ceil(g);
    // q[lane][slot] after the xor reduction.
    let mut q = vec![vec![0.0; si]; g];
    for s in 0..si {
        let mut v: Vec<f64> = (0..g)
            .map(|l| if l + s * g < o * k { a[l + s * g] * b[l + s * g] } else { 0.0 })
            .collect();
        let mut d = k / 2;
        while d > 0 {
            v = (0..g).map(|l| v[l] + v[l ^ d]).collect();
            d /= 2;
        }
        (0..g).for_each(|l| q[l][s] = v[l]);
    }
    (0..o)
        .map(|i| {
            let from = i * k;
            let mut v = 0.0;
            for (t, _) in q[0].iter().enumerate() {
                let u = q[from % g][t];
                if from / g == t {
                    v = u;
                }
            }
            v
        })
        .collect()
}

#[test]
fn segmented_dot_lane_arithmetic_matches_the_dot_product() {
    for (g, o, k) in [(32, 4, 16), (32, 2, 8), (16, 4, 4), (32, 8, 2), (8, 3, 8), (32, 16, 4)] {
        let a: Vec<f64> = (0..o * k).map(|x| (x * 7 % 13) as f64 - 6.0).collect();
        let b: Vec<f64> = (0..o * k).map(|x| (x * 5 % 11) as f64 * 0.5).collect();
        let want: Vec<f64> =
            (0..o).map(|i| (0..k).map(|j| a[i * k + j] * b[i * k + j]).sum()).collect();
        assert_eq!(dot_segments_model(g, o, k, &a, &b), want, "g={g} o={o} k={k}");
    }
}
