//! Gradient checks of the autodiff pass: for every zoo model on every adversarial graph, the
//! gradients of `sum_o <out_o, seed_o>` with respect to every weight and every input that the
//! reference interpreter computes from the differentiated module match central finite
//! differences of the forward module in f64; the split forward/backward pair gives the same
//! gradients as the single differentiated module; and one operator at a time on a tiny graph.
//! Compiled for a graph, saved values the optimised forward computes on compact rows are saved
//! as those rows, and the plans still give the reference gradients.

mod common;

use common::{adversarial_graphs, compile_zoo, zoo, Case};
use pigeon::ir::builder::ModuleBuilder;
use pigeon::ir::{
    AggGroup, AggOp, BinaryOp, Domain, Endpoint, Index, Init, Module, Select, UnaryOp, WeightKind,
};
use pigeon::passes::autodiff::{differentiate, split, Differentiated, Split};
use pigeon::runtime::backend::Backend;
use pigeon::runtime::cpu::{CpuBackend, Precision};
use pigeon::runtime::graph::HeteroGraph;
use pigeon::runtime::interp::interpret;
use pigeon::runtime::tensor::Tensor;
use pigeon::runtime::weights::WeightStore;
use pigeon::train::Gradients;

/// Step of the central differences; f64 keeps truncation and rounding error near 1e-9.
const H: f64 = 1e-5;
/// Largest |autodiff - finite difference| allowed, relative to max(1, the largest gradient).
const TOL: f64 = 1e-6;

impl Case {
    /// `sum_o <out_o, seed_o>` of the forward module.
    fn loss(&self, inputs: &[(String, Tensor)], weights: &WeightStore) -> f64 {
        let outs = interpret(&self.module, &self.graph, inputs, weights).expect("forward");
        outs.iter()
            .zip(&self.seeds)
            .map(|((_, t), (_, s))| t.data.iter().zip(&s.data).map(|(a, b)| a * b).sum::<f64>())
            .sum()
    }

    /// The differentiated module's gradient outputs, by name.
    fn autodiff(&self, d: &Differentiated) -> Vec<(String, Tensor)> {
        let mut inputs = self.inputs.clone();
        for (out, seed_name) in &d.seeds {
            let s = self.seeds.iter().find(|(n, _)| n == out).expect("seed").1.clone();
            inputs.push((seed_name.clone(), s));
        }
        let outs = interpret(&d.module, &self.graph, &inputs, &self.weights)
            .unwrap_or_else(|e| panic!("{}: backward: {e}\n{}", self.module.name, d.module));
        outs.into_iter().filter(|(n, _)| n.starts_with("grad:")).collect()
    }

    /// The backward module's inputs: the model's inputs, the saved values from running the
    /// forward module, and the seeds.
    fn backward_inputs(&self, d: &Differentiated, s: &Split) -> Vec<(String, Tensor)> {
        let fwd = interpret(&s.forward, &self.graph, &self.inputs, &self.weights).expect("fwd");
        let mut inputs = self.inputs.clone();
        inputs.extend(fwd.into_iter().filter(|(n, _)| n.starts_with("saved:")));
        for (out, seed_name) in &d.seeds {
            let t = self.seeds.iter().find(|(n, _)| n == out).expect("seed").1.clone();
            inputs.push((seed_name.clone(), t));
        }
        inputs
    }

    /// Checks up to `per_tensor` entries of every weight and input gradient against central
    /// differences; returns the number of entries checked.
    fn check(&self, d: &Differentiated, per_tensor: usize) -> usize {
        let grads = self.autodiff(d);
        let mut checked = 0;
        for (w, out) in &d.weight_grads {
            let g = &grads.iter().find(|(n, _)| n == out).expect("weight grad").1;
            for i in picks(g.data.len(), per_tensor) {
                let f = |delta: f64| {
                    let mut ws = self.weights.clone();
                    ws.get_mut(*w).expect("weight").data[i] += delta;
                    self.loss(&self.inputs, &ws)
                };
                self.compare(out, i, g, (f(H) - f(-H)) / (2.0 * H));
                checked += 1;
            }
        }
        for (input, out) in &d.input_grads {
            let g = &grads.iter().find(|(n, _)| n == out).expect("input grad").1;
            let at = self.inputs.iter().position(|(n, _)| n == input).expect("input");
            for i in picks(g.data.len(), per_tensor) {
                let f = |delta: f64| {
                    let mut xs = self.inputs.clone();
                    xs[at].1.data[i] += delta;
                    self.loss(&xs, &self.weights)
                };
                self.compare(out, i, g, (f(H) - f(-H)) / (2.0 * H));
                checked += 1;
            }
        }
        checked
    }

    fn compare(&self, what: &str, i: usize, g: &Tensor, fd: f64) {
        let scale = g.data.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        let ad = g.data[i];
        assert!(
            (ad - fd).abs() <= TOL * scale,
            "{} on {}: {what}[{i}]: autodiff {ad:.12e}, finite difference {fd:.12e}",
            self.module.name,
            self.graph.name
        );
    }
}

/// Up to `n` indices spread over `0..len` (all of them when `len <= n`).
fn picks(len: usize, n: usize) -> Vec<usize> {
    if len <= n {
        return (0..len).collect();
    }
    let mut v: Vec<usize> = (0..n).map(|k| k * len / n + (k * 7) % (len / n).max(1)).collect();
    v.dedup();
    v
}

fn all_inputs(m: &Module) -> Vec<String> {
    m.inputs().into_iter().map(|d| d.name).collect()
}

#[test]
fn every_zoo_model_matches_finite_differences_on_adversarial_graphs() {
    let mut total = 0;
    for (name, params) in zoo() {
        let module = compile_zoo(name, &params);
        let names = all_inputs(&module);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let d = differentiate(&module, &refs).unwrap_or_else(|e| panic!("{name}: {e}"));
        for graph in adversarial_graphs() {
            let case = Case::new(module.clone(), graph, 11);
            total += case.check(&d, 12);
        }
    }
    assert!(total > 1000, "only {total} gradient entries checked");
}

#[test]
fn differentiated_modules_round_trip_through_the_text_form() {
    for (name, params) in zoo() {
        let module = compile_zoo(name, &params);
        let (d, s) = common::differentiated(&module);
        for m in [&d.module, &s.forward, &s.backward] {
            let text = pigeon::ir::print(m);
            let back =
                pigeon::ir::parse_module(&text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
            assert_eq!(&back, m, "{name}");
        }
        // Every derivative operator appears in some zoo model's backward pass, except the
        // max routing (rsage) which is checked by name.
        if name == "rsage" {
            assert!(pigeon::ir::print(&s.backward).contains("max_grad"));
        }
    }
}

#[test]
fn split_forward_and_backward_give_the_same_gradients() {
    for (name, params) in zoo() {
        let module = compile_zoo(name, &params);
        let names = all_inputs(&module);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let d = differentiate(&module, &refs).expect("differentiate");
        let s = split(&d).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(s.backward.insts.values().all(|i| !matches!(
            i.op,
            pigeon::ir::Op::Input { ref name, .. } if name.starts_with("saved:") && i.ty.domain.is_weight_like()
        )));
        let graph = adversarial_graphs().remove(0);
        let case = Case::new(module.clone(), graph, 5);
        let want = case.autodiff(&d);
        let inputs = case.backward_inputs(&d, &s);
        let got = interpret(&s.backward, &case.graph, &inputs, &case.weights).expect("bwd");
        assert_eq!(got.len(), want.len(), "{name}");
        for ((gn, gt), (wn, wt)) in got.iter().zip(&want) {
            assert_eq!(gn, wn);
            assert_eq!(gt.data, wt.data, "{name}: {gn}");
        }
        assert_eq!(s.saved.len(), s.saved.iter().filter(|v| !v.ty.domain.is_weight_like()).count());
    }
}

/// A tiny graph with two node types, three relations, a multi-edge and a node with no
/// incoming edge.
fn tiny() -> HeteroGraph {
    common::graph(
        "tiny",
        &[("a", 3), ("b", 2)],
        3,
        &[(0, 1, 0), (0, 1, 0), (2, 1, 1), (3, 0, 2), (4, 0, 0), (1, 3, 1), (0, 3, 1), (4, 4, 2)],
    )
}

/// Builds a one-operator model around `body` (which gets the builder, the node input `h` of
/// shape [3] and a per-relation weight `W` [3, 2]) and checks all of its gradients.
fn check_op(
    what: &str,
    body: impl Fn(&mut ModuleBuilder, pigeon::ir::ValueId, pigeon::ir::ValueId) -> pigeon::ir::ValueId,
) {
    let mut b = ModuleBuilder::new(what);
    let h = b.input("h", Domain::Node, &[3]).expect("input");
    let w = b.weight("W", WeightKind::PerRelation, &[3, 2], Init::Glorot).expect("weight");
    let out = body(&mut b, h, w);
    b.output("out", out);
    let module = b.finish().unwrap_or_else(|e| panic!("{what}: {e}"));
    let d = differentiate(&module, &["h"]).unwrap_or_else(|e| panic!("{what}: {e}"));
    let case = Case::new(module, tiny(), 3);
    assert!(case.check(&d, 100) >= 15, "{what}");
}

#[test]
fn each_operator_matches_finite_differences() {
    let src = Index::Node(Endpoint::Src);
    check_op("gather-linear-sum", |b, h, w| {
        let e = b.gather(h, src).unwrap();
        let m = b.linear(e, w, Select::Relation).unwrap();
        b.aggregate(AggOp::Sum, AggGroup::All, m).unwrap()
    });
    for (op, group) in [
        (AggOp::Mean, AggGroup::All),
        (AggOp::Mean, AggGroup::PerRelation),
        (AggOp::Max, AggGroup::All),
        (AggOp::Max, AggGroup::PerRelation),
        (AggOp::Sum, AggGroup::PerRelation),
    ] {
        check_op(&format!("aggregate-{}-{group:?}", op.name()), |b, h, w| {
            let e = b.gather(h, src).unwrap();
            let m = b.linear(e, w, Select::Relation).unwrap();
            b.aggregate(op, group, m).unwrap()
        });
    }
    for f in [
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Gelu,
        UnaryOp::Elu(0.7),
        UnaryOp::LeakyRelu(0.1),
        UnaryOp::Exp,
        UnaryOp::Neg,
    ] {
        check_op(&format!("unary-{}", f.name()), |b, h, w| {
            let e = b.gather(h, src).unwrap();
            let m = b.linear(e, w, Select::Relation).unwrap();
            let u = b.unary(f, m).unwrap();
            b.aggregate(AggOp::Sum, AggGroup::All, u).unwrap()
        });
    }
    for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max] {
        check_op(&format!("binary-{}", op.name()), |b, h, w| {
            let e = b.gather(h, src).unwrap();
            let m = b.linear(e, w, Select::Relation).unwrap();
            let d = b.gather(h, Index::Node(Endpoint::Dst)).unwrap();
            let m2 = b.linear(d, w, Select::Relation).unwrap();
            // Keep divisors away from 0: exp(.) > 0.
            let m2 = if op == BinaryOp::Div { b.unary(UnaryOp::Exp, m2).unwrap() } else { m2 };
            let c = b.binary(op, m, m2).unwrap();
            b.aggregate(AggOp::Sum, AggGroup::All, c).unwrap()
        });
    }
    check_op("softmax-dot-view-concat-shared", |b, h, w| {
        let e = b.gather(h, src).unwrap();
        let m = b.linear(e, w, Select::Relation).unwrap();
        let d = b.gather(h, Index::Node(Endpoint::Dst)).unwrap();
        let s = b.dot(e, d).unwrap();
        let a = b.softmax(s).unwrap();
        let am = b.binary(BinaryOp::Mul, a, m).unwrap();
        let v = b.view(am, &[2, 1]).unwrap();
        let q = b.weight("q", WeightKind::Shared, &[1], Init::Glorot).unwrap();
        let vq = b.binary(BinaryOp::Mul, v, q).unwrap();
        let v2 = b.view(vq, &[2]).unwrap();
        let c = b.concat(&[v2, m]).unwrap();
        b.aggregate(AggOp::Sum, AggGroup::All, c).unwrap()
    });
}

/// The backward module compiled for `graph` with `options`, run by the CPU back end `backend`,
/// against the reference interpreter's backward: the worst error over the gradient
/// outputs (relative to max(1, the output's largest gradient)) and the output it is in.
fn backward_plan_error(
    case: &Case,
    d: &Differentiated,
    s: &Split,
    options: &pigeon::passes::Options,
    backend: &CpuBackend,
) -> (f64, String) {
    let name = &case.module.name;
    let stats = pigeon::runtime::layout::graph_stats(&case.graph);
    let inputs = case.backward_inputs(d, s);
    let want = interpret(&s.backward, &case.graph, &inputs, &case.weights).expect("bwd");
    let compiled = pigeon::passes::compile(&s.backward, &stats, options, None)
        .unwrap_or_else(|e| panic!("{name} with {options:?}: {e}"));
    let plan = compiled.plan.expect("a plan");
    let got = backend
        .execute(&plan, &case.graph, &inputs, &case.weights)
        .unwrap_or_else(|e| panic!("{name} on {} with {options:?}: {e}\n{plan}", case.graph.name));
    assert_eq!(got.outputs.len(), want.len(), "{name}");
    let mut worst = (0.0f64, String::new());
    for ((gn, gt), (wn, wt)) in got.outputs.iter().zip(&want) {
        assert_eq!(gn, wn);
        assert_eq!((gt.rows, &gt.shape), (wt.rows, &wt.shape), "{name}: {gn}");
        // Relative to max(1, the largest gradient), as the finite-difference checks: some
        // gradients are exactly 0 in exact arithmetic (HGT's key bias under softmax).
        let scale = wt.data.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        let err = gt.data.iter().zip(&wt.data).fold(0.0f64, |m, (g, w)| m.max((g - w).abs()));
        let err = err / scale;
        if err > worst.0 {
            worst = (err, gn.clone());
        }
    }
    worst
}

#[test]
fn optimised_backward_plans_on_the_cpu_match_the_reference_backward() {
    let mut runs = 0;
    // One back end per precision for every run: buffers it reuses across plans and graphs
    // must not leak values from one execution into the next.
    let (f64_cpu, f32_cpu) = (CpuBackend::new(Precision::F64), CpuBackend::new(Precision::F32));
    for (name, params) in zoo() {
        let module = compile_zoo(name, &params);
        let (d, s) = common::differentiated(&module);
        for (gi, graph) in adversarial_graphs().into_iter().enumerate() {
            let case = Case::new(module.clone(), graph, 11 + gi as u64);
            for options in common::settings() {
                let (err, what) = backward_plan_error(&case, &d, &s, &options, &f64_cpu);
                let on = &case.graph.name;
                assert!(err < 1e-10, "{name} on {on} with {options:?}: {what}: f64 error {err:e}");
                runs += 1;
            }
            let all = pigeon::passes::Options::default();
            let (err, what) = backward_plan_error(&case, &d, &s, &all, &f32_cpu);
            assert!(err < 1e-4, "{name} on {}: {what}: f32 error {err:e}", case.graph.name);
        }
    }
    assert!(runs >= 11 * 4 * 8, "{runs} runs");
}

#[test]
fn inter_level_passes_keep_backward_modules() {
    for (name, params) in zoo() {
        let module = compile_zoo(name, &params);
        let d = differentiate(&module, &[]).expect("differentiate");
        let s = split(&d).expect("split");
        let graph = adversarial_graphs().remove(3);
        let stats = pigeon::runtime::layout::graph_stats(&graph);
        let case = Case::new(module.clone(), graph, 9);
        let inputs = case.backward_inputs(&d, &s);
        let want = interpret(&s.backward, &case.graph, &inputs, &case.weights).expect("bwd");
        let options = pigeon::passes::Options::default();
        let opt =
            pigeon::passes::compile(&s.backward, &stats, &options, Some("materialize-compact"))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = interpret(&opt.module, &case.graph, &inputs, &case.weights).expect("opt bwd");
        for ((gn, gt), (_, wt)) in got.iter().zip(&want) {
            assert!(common::max_rel_err(&gt.data, &wt.data) < 1e-12, "{name}: {gn}");
        }
    }
}

#[test]
fn training_steps_on_cpu_plans_keep_saved_values_on_the_back_end_and_match_the_reference() {
    let mut kept_models = 0;
    for (name, params) in zoo() {
        let module = compile_zoo(name, &params);
        let mut graphs = adversarial_graphs();
        // Edges grouped by relation (as loaders that add one relation at a time give them)
        // take the back end's in-place paths for relation segments.
        graphs.extend([grouped_by_relation(&graphs[0]), grouped_by_relation(&graphs[3])]);
        for (gi, graph) in graphs.into_iter().enumerate() {
            let case = Case::new(module.clone(), graph, 21 + gi as u64);
            let on = case.graph.name.clone();
            // One step: forward, then backward from its results.
            let step = |grads: &Gradients| {
                let mut inputs = case.inputs.clone();
                let fwd = grads.forward(&case.graph, &inputs, &case.weights).expect("forward");
                let saved = fwd.outputs.iter().filter(|(n, _)| n.starts_with("saved:")).count();
                let seeds = case.seeds.clone();
                let out = grads.backward(&case.graph, &mut inputs, &case.weights, fwd, seeds);
                (out.unwrap_or_else(|e| panic!("{name} on {on}: backward: {e}")), saved)
            };
            let (want, saved_on_host) = step(&Gradients::new(&module, &[]).expect("differentiate"));
            for (precision, tol) in [(Precision::F64, 1e-10), (Precision::F32, 1e-4)] {
                let backend = Box::new(CpuBackend::new(precision));
                let grads = Gradients::new(&module, &[])
                    .and_then(|g| g.compile(&case.graph, &Default::default(), backend))
                    .unwrap_or_else(|e| panic!("{name} on {on}: {e}"));
                // Twice: the second step reuses the buffers of the first (the pool).
                for _ in 0..2 {
                    let (got, saved) = step(&grads);
                    assert_eq!(saved, 0, "{name} on {on}: saved values went through the host");
                    assert_eq!(got.len(), want.len(), "{name} on {on}");
                    for ((gn, gt), (wn, wt)) in got.iter().zip(&want) {
                        assert_eq!(gn, wn);
                        let scale = wt.data.iter().fold(1.0f64, |m, x| m.max(x.abs()));
                        let err = gt
                            .data
                            .iter()
                            .zip(&wt.data)
                            .fold(0.0f64, |m, (g, w)| m.max((g - w).abs() / scale));
                        assert!(err < tol, "{name} on {on} ({precision:?}): {gn}: error {err:e}");
                    }
                }
            }
            kept_models += usize::from(saved_on_host > 0);
        }
    }
    assert!(kept_models >= 8, "only {kept_models} model/graph pairs save values");
}

/// `g` with its edges sorted stably by relation, under a new name.
fn grouped_by_relation(g: &HeteroGraph) -> HeteroGraph {
    let mut order: Vec<usize> = (0..g.num_edges()).collect();
    order.sort_by_key(|&e| g.rel[e]);
    let pick = |v: &[u32]| order.iter().map(|&e| v[e]).collect();
    HeteroGraph {
        name: format!("{} by relation", g.name),
        src: pick(&g.src),
        dst: pick(&g.dst),
        rel: pick(&g.rel),
        ..g.clone()
    }
}

/// One step of `grads` on `case`: the gradient outputs.
fn train_step(case: &Case, grads: &Gradients) -> Vec<(String, Tensor)> {
    let mut inputs = case.inputs.clone();
    let fwd = grads.forward(&case.graph, &inputs, &case.weights).expect("forward");
    grads
        .backward(&case.graph, &mut inputs, &case.weights, fwd, case.seeds.clone())
        .unwrap_or_else(|e| panic!("{} on {}: backward: {e}", case.module.name, case.graph.name))
}

#[test]
fn wide_hgt_backward_gemms_that_scatter_into_sources_match_the_reference() {
    use pigeon::ir::plan::{Kernel, RowSpace, StoreMode};
    use pigeon::ir::{Endpoint, Select};
    // 64 wide, the input gradients of `src.K @ k_rel[r]` are GEMMs adding into source rows
    // (narrow layers take matvecs in traversals instead).
    let module = compile_zoo("hgt", &[("in_dim".into(), 64), ("out_dim".into(), 64)]);
    let spec = "synthetic:nodes=30,edges=120,relations=3,ntypes=2";
    let base = pigeon::runtime::load_graph(spec).expect("synthetic graph");
    let mut reversed = base.clone();
    for v in [&mut reversed.src, &mut reversed.dst, &mut reversed.rel] {
        v.reverse();
    }
    reversed.name = format!("{} reversed", base.name);
    // Grouped by relation (in place) and not (gathered by the relation order); with compaction
    // the adjoints of `src.K @ k_rel[r]` run over compact source rows (the edge adjoint summed
    // per (source, relation) pair first), without it over edges.
    let cases = [grouped_by_relation(&base), reversed]
        .into_iter()
        .enumerate()
        .flat_map(|g| [(g.clone(), true), (g, false)]);
    for ((gi, graph), compact) in cases {
        let case = Case::new(module.clone(), graph, 31 + gi as u64);
        let want = train_step(&case, &Gradients::new(&module, &[]).expect("differentiate"));
        let backend = Box::new(CpuBackend::new(Precision::F64));
        let options = pigeon::passes::Options { compact, ..Default::default() };
        let grads = Gradients::new(&module, &[])
            .and_then(|g| g.compile(&case.graph, &options, backend))
            .expect("compile");
        let rows = if compact { RowSpace::Compact(Endpoint::Src) } else { RowSpace::Edges };
        let (_, bwd) = grads.plans().expect("plans");
        let scatters = bwd.kernels.values().filter(
            |k| matches!(k, Kernel::Gemm(g) if g.store == StoreMode::AddIntoSrc && g.rows == rows),
        );
        assert_eq!(scatters.count(), 2, "GEMMs adding {rows:?} rows into sources:\n{bwd}");
        let weight_grads = bwd.kernels.values().filter(|k| {
            matches!(k, Kernel::WeightGrad(g) if g.rows == rows && g.segment == Select::Relation)
        });
        // k_rel and v_rel; p_rel's gradient reads the destination too, so it stays on edges.
        let want_wg = if compact { 2 } else { 3 };
        assert_eq!(
            weight_grads.count(),
            want_wg,
            "relation weight gradients over {rows:?}:\n{bwd}"
        );
        for _ in 0..2 {
            let got = train_step(&case, &grads);
            for ((gn, gt), (_, wt)) in got.iter().zip(&want) {
                let scale = wt.data.iter().fold(1.0f64, |m, x| m.max(x.abs()));
                let err =
                    gt.data.iter().zip(&wt.data).fold(0.0f64, |m, (g, w)| m.max((g - w).abs()));
                assert!(err / scale < 1e-10, "{}: {gn}: error {:e}", case.graph.name, err / scale);
            }
        }
    }
}

/// A graph whose relations each connect one node-type pair, with a few edges per node (so that
/// folding HGT's node-type key and value weights into its relation weights pays): types a, b,
/// c; relations a->b, b->a, b->c, c->a, a->a (a->a without edges would be legal too).
fn typed_graph() -> HeteroGraph {
    use pigeon::runtime::graph::Relation;
    let sizes = [200u32, 150, 100];
    let first = [0u32, 200, 350];
    let pairs = [(0usize, 1usize), (1, 0), (1, 2), (2, 0), (0, 0)];
    let mut edges = Vec::new();
    let mut x = 12345u64;
    let mut next = |n: u32| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((x >> 33) % u64::from(n)) as u32
    };
    for (r, &(s, d)) in pairs.iter().enumerate() {
        for _ in 0..280 {
            edges.push((first[s] + next(sizes[s]), first[d] + next(sizes[d]), r as u32));
        }
    }
    let mut g = common::graph("typed", &[("a", 200), ("b", 150), ("c", 100)], 5, &edges);
    for (rel, &(s, d)) in g.relations.iter_mut().zip(&pairs) {
        *rel = Relation { src_type: Some(s as u32), dst_type: Some(d as u32), ..rel.clone() };
    }
    g
}

#[test]
fn hgt_trained_with_key_and_value_weights_folded_into_relation_weights_matches_the_reference() {
    use pigeon::ir::plan::{Kernel, RowSpace};
    let module = compile_zoo("hgt", &[("in_dim".into(), 64), ("out_dim".into(), 64)]);
    let graph = typed_graph();
    graph.validate().expect("a valid typed graph");
    assert!(pigeon::runtime::layout::graph_stats(&graph).typed_relations);
    let case = Case::new(module.clone(), graph, 77);
    let want = train_step(&case, &Gradients::new(&module, &[]).expect("differentiate"));
    for reorder in [true, false] {
        let options = pigeon::passes::Options { reorder, ..Default::default() };
        let grads = Gradients::new(&module, &[])
            .and_then(|g| {
                g.compile(&case.graph, &options, Box::new(CpuBackend::new(Precision::F64)))
            })
            .expect("compile");
        let (fwd, bwd) = grads.plans().expect("plans");
        // Reordered before differentiation: K and V are not computed per node in the forward
        // plan, and the backward plan has the per-relation products of the folded weights.
        let node_gemms = |p: &pigeon::ir::plan::Plan| {
            p.kernels
                .values()
                .filter(|k| matches!(k, Kernel::Gemm(g) if g.rows == RowSpace::Nodes))
                .count()
        };
        assert_eq!(node_gemms(fwd), if reorder { 2 } else { 4 }, "reorder {reorder}:\n{fwd}");
        let relation_products = bwd
            .kernels
            .values()
            .filter(|k| matches!(k, Kernel::Gemm(g) if g.rows == RowSpace::Relations));
        assert_eq!(relation_products.count() > 0, reorder, "reorder {reorder}:\n{bwd}");
        let got = train_step(&case, &grads);
        assert_eq!(got.len(), want.len());
        for ((gn, gt), (wn, wt)) in got.iter().zip(&want) {
            assert_eq!(gn, wn);
            let err = common::max_rel_err(&gt.data, &wt.data);
            assert!(err < 1e-10, "reorder {reorder}: {gn}: error {err:e}");
        }
    }
}

#[test]
fn rgcn_weight_gradients_sum_edge_adjoints_per_compact_row() {
    use pigeon::ir::{Domain, Endpoint, Index, Op};
    let module = compile_zoo("rgcn", &[]);
    let (d, s) = common::differentiated(&module);
    // 40 edges over 6 (source, relation) pairs: compaction pays.
    let graph = adversarial_graphs().remove(3);
    let stats = pigeon::runtime::layout::graph_stats(&graph);
    for compact in [true, false] {
        let options = pigeon::passes::Options { compact, ..Default::default() };
        let m = pigeon::passes::compile(&s.backward, &stats, &options, Some("materialize-compact"))
            .expect("compiles")
            .module;
        let on_compact = m.insts.values().any(|i| {
            matches!(i.op, Op::LinearGrad { x, .. }
                if m.ty(x).domain == Domain::Compact(Endpoint::Src))
        });
        let sums = m.insts.values().any(|i| {
            matches!(i.op, Op::Scatter { index: Index::EdgeToCompact(Endpoint::Src), .. })
        });
        assert_eq!((on_compact, sums), (compact, compact), "compact: {compact}\n{m}");
        let case = Case::new(module.clone(), graph.clone(), 5);
        let (err, what) =
            backward_plan_error(&case, &d, &s, &options, &CpuBackend::new(Precision::F64));
        assert!(err < 1e-10, "compact: {compact}: {what}: error {err:e}");
    }
}

/// The saved values that the forward module of `s`, optimised for `graph` with `options`,
/// computes as a read-back `gather X by compact.ep` of compact rows, with their endpoint.
fn compact_read_backs(
    s: &Split,
    graph: &HeteroGraph,
    options: &pigeon::passes::Options,
) -> Vec<(String, Endpoint)> {
    let stats = pigeon::runtime::layout::graph_stats(graph);
    let opt = pigeon::passes::compile(&s.forward, &stats, options, None).expect("forward");
    opt.module
        .outputs
        .iter()
        .filter(|(n, _)| n.starts_with("saved:"))
        .filter_map(|(n, v)| match opt.module.insts[*v].op {
            pigeon::ir::Op::Gather { index: Index::EdgeToCompact(ep), .. } => Some((n.clone(), ep)),
            _ => None,
        })
        .collect()
}

#[test]
fn saved_values_computed_on_compact_rows_are_saved_as_compact_rows_and_match_the_reference() {
    use pigeon::ir::plan::{BufferKind, RowSpace};
    use pigeon::passes::autodiff::{compact_saved_name, compile_split};
    let mut moved_pairs = 0;
    let f64_cpu = CpuBackend::new(Precision::F64);
    for (name, params) in zoo() {
        let module = compile_zoo(name, &params);
        let (d, s) = common::differentiated(&module);
        for (gi, graph) in adversarial_graphs().into_iter().enumerate() {
            let case = Case::new(module.clone(), graph, 41 + gi as u64);
            let on = &case.graph.name;
            let stats = pigeon::runtime::layout::graph_stats(&case.graph);
            let inputs = case.backward_inputs(&d, &s);
            let want = interpret(&s.backward, &case.graph, &inputs, &case.weights).expect("bwd");
            for options in common::settings().into_iter().filter(|o| o.compact) {
                let what = format!("{name} on {on} with {options:?}");
                let read_backs = compact_read_backs(&s, &case.graph, &options);
                let c =
                    compile_split(&s, &stats, &options).unwrap_or_else(|e| panic!("{what}: {e}"));
                // The forward plan returns each read-back's compact rows, not an edge table.
                for (saved, ep) in &read_backs {
                    let compact = compact_saved_name(saved, *ep);
                    assert!(
                        !c.forward.outputs.iter().any(|(n, _)| n == saved),
                        "{what}: `{saved}` is still saved per edge"
                    );
                    let buf = c.forward.outputs.iter().find(|(n, _)| *n == compact);
                    let buf = buf.unwrap_or_else(|| panic!("{what}: no output `{compact}`")).1;
                    assert_eq!(c.forward.buffers[buf].rows, RowSpace::Compact(*ep), "{what}");
                    let input = BufferKind::Input(compact.clone());
                    assert!(
                        c.backward.buffers.values().any(|b| b.kind == input),
                        "{what}: the backward plan does not read `{compact}`"
                    );
                    let entry = c.split.saved.iter().find(|e| e.name == compact);
                    let entry = entry.unwrap_or_else(|| panic!("{what}: no saved `{compact}`"));
                    assert_eq!(
                        entry.bytes(&stats),
                        stats.rows(Domain::Compact(*ep)) * entry.ty.shape.numel() * 4
                    );
                }
                moved_pairs += usize::from(!read_backs.is_empty());
                // The rewritten pair on the reference interpreter: the same gradients.
                let moved_inputs = case.backward_inputs(&d, &c.split);
                let got = interpret(&c.split.backward, &case.graph, &moved_inputs, &case.weights)
                    .unwrap_or_else(|e| panic!("{what}: rewritten backward: {e}"));
                for ((gn, gt), (_, wt)) in got.iter().zip(&want) {
                    let err = common::max_rel_err(&gt.data, &wt.data);
                    assert!(err < 1e-12, "{what}: interpreted {gn}: error {err:e}");
                }
                let (err, gn) = plan_step_error(&case, &d, &c, &want, &f64_cpu);
                assert!(err < 1e-10, "{what}: plans: {gn}: error {err:e}");
            }
        }
    }
    // HGT (keys and values, both head counts) and R-SAGE (pooled messages) on the adversarial
    // and parallel-edge graphs, with each of the 4 settings that compact.
    assert!(moved_pairs >= 24, "only {moved_pairs} model/graph/setting runs moved saved values");
}

/// The forward plan of `c` run by `backend`, its saved values and the seeds of `case` feeding
/// the backward plan: the worst error of a gradient output against `want` (relative to max(1,
/// its largest gradient)) and the output it is in.
fn plan_step_error(
    case: &Case,
    d: &Differentiated,
    c: &pigeon::passes::autodiff::CompiledSplit,
    want: &[(String, Tensor)],
    backend: &CpuBackend,
) -> (f64, String) {
    let fwd =
        backend.execute(&c.forward, &case.graph, &case.inputs, &case.weights).unwrap_or_else(|e| {
            panic!("{} on {}: forward plan: {e}", case.module.name, case.graph.name)
        });
    let mut inputs = case.inputs.clone();
    inputs.extend(fwd.outputs.into_iter().filter(|(n, _)| n.starts_with("saved:")));
    for (out, seed_name) in &d.seeds {
        let t = case.seeds.iter().find(|(n, _)| n == out).expect("seed").1.clone();
        inputs.push((seed_name.clone(), t));
    }
    let got =
        backend.execute(&c.backward, &case.graph, &inputs, &case.weights).unwrap_or_else(|e| {
            panic!("{} on {}: backward plan: {e}", case.module.name, case.graph.name)
        });
    assert_eq!(got.outputs.len(), want.len());
    let mut worst = (0.0f64, String::new());
    for ((gn, gt), (wn, wt)) in got.outputs.iter().zip(want) {
        assert_eq!(gn, wn);
        let scale = wt.data.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        let err = gt.data.iter().zip(&wt.data).fold(0.0f64, |m, (g, w)| m.max((g - w).abs()));
        if err / scale > worst.0 {
            worst = (err / scale, gn.clone());
        }
    }
    worst
}
