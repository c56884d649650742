//! Constant inputs pinned to an engine once (`Gradients::pin`, `Backend::upload`) against the
//! same inputs passed to every pass: bit-identical outputs and gradients for every zoo model on
//! the CPU back end (f32 and f64, one thread so that the order of atomic adds is fixed) and on
//! the reference interpreter; a pinned value of the wrong shape gives the same binding error as
//! a passed one; a name both pinned and passed, or pinned twice, is a binding error.

mod common;

use common::{adversarial_graphs, compile_zoo, zoo, Case};
use pigeon::runtime::backend::{Backend, Inputs};
use pigeon::runtime::cpu::{CpuBackend, Precision};
use pigeon::runtime::tensor::Tensor;
use pigeon::runtime::RuntimeError;
use pigeon::train::Gradients;
use pigeon::Error;

impl Case {
    /// The model differentiated by `by`, on the reference interpreter (`None`) or on plans
    /// run by a one-thread CPU back end in `precision`.
    fn gradients(&self, by: &[&str], precision: Option<Precision>) -> Gradients {
        let g = Gradients::new(&self.module, by).expect("differentiate");
        match precision {
            None => g,
            Some(p) => {
                let backend = Box::new(CpuBackend::with_threads(p, Some(1)));
                g.compile(&self.graph, &Default::default(), backend).expect("compile")
            }
        }
    }

    /// One step of `grads` given `inputs`: the forward outputs returned to the host, then the
    /// gradients.
    fn step(
        &self,
        grads: &Gradients,
        inputs: &[(String, Tensor)],
    ) -> Result<Vec<(String, Tensor)>, Error> {
        let mut inputs = inputs.to_vec();
        let fwd = grads.forward(&self.graph, &inputs, &self.weights)?;
        let mut out = fwd.outputs.clone();
        out.extend(grads.backward(
            &self.graph,
            &mut inputs,
            &self.weights,
            fwd,
            self.seeds.clone(),
        )?);
        Ok(out)
    }
}

/// The values of `ts` as bits, so that equality is bit equality (NaN included).
fn bits(ts: &[(String, Tensor)]) -> Vec<(String, usize, Vec<u64>)> {
    ts.iter()
        .map(|(n, t)| (n.clone(), t.rows, t.data.iter().map(|x| x.to_bits()).collect()))
        .collect()
}

/// The engines compared: the reference interpreter and the CPU back end in f64 and f32.
const ENGINES: [Option<Precision>; 3] = [None, Some(Precision::F64), Some(Precision::F32)];

#[test]
fn pinned_inputs_give_bit_identical_outputs_and_gradients() {
    let graphs = adversarial_graphs();
    let mut cases = 0;
    for (name, params) in zoo() {
        let module = compile_zoo(name, &params);
        for graph in [&graphs[0], &graphs[3]] {
            let case = Case::new(module.clone(), graph.clone(), 41);
            if case.inputs.is_empty() {
                continue;
            }
            // The first input is differentiated by and passed every step (as a learned input
            // is); the others are pinned.
            let first = case.inputs[0].0.clone();
            let (passed, pinned) = case.inputs.split_at(1);
            for precision in ENGINES {
                let on = format!("{name} on {} ({precision:?})", graph.name);
                let plain = case.gradients(&[&first], precision);
                let mut grads = case.gradients(&[&first], precision);
                grads.pin(pinned.to_vec()).unwrap_or_else(|e| panic!("{on}: pin: {e}"));
                let names: Vec<String> = pinned.iter().map(|(n, _)| n.clone()).collect();
                assert_eq!(grads.pinned(), names, "{on}");
                // Twice: the second step reuses the back end's buffers and the same pinned
                // values.
                for step in 0..2 {
                    let want = case.step(&plain, &case.inputs).expect("unpinned step");
                    let got = case.step(&grads, passed).unwrap_or_else(|e| panic!("{on}: {e}"));
                    assert!(want.len() > 1, "{on}: outputs and gradients");
                    assert!(bits(&got) == bits(&want), "{on}, step {step}: results differ");
                }
                cases += 1;
            }
        }
    }
    assert!(cases >= 60, "only {cases} cases");
}

#[test]
fn inputs_pinned_before_compiling_are_uploaded_by_compile() {
    let module = compile_zoo("rgcn", &zoo()[0].1);
    let case = Case::new(module, adversarial_graphs().remove(0), 7);
    let want = case.step(&case.gradients(&[], None), &case.inputs).expect("step");
    let mut grads = Gradients::new(&case.module, &[]).expect("differentiate");
    grads.pin(case.inputs.clone()).expect("pin");
    let backend = Box::new(CpuBackend::with_threads(Precision::F64, Some(1)));
    let grads = grads.compile(&case.graph, &Default::default(), backend).expect("compile");
    assert_eq!(grads.pinned().len(), case.inputs.len());
    let got = case.step(&grads, &[]).expect("pinned step");
    for ((gn, gt), (wn, wt)) in got.iter().zip(&want) {
        assert_eq!(gn, wn);
        assert!(common::max_rel_err(&gt.data, &wt.data) < 1e-12, "{gn}");
    }
}

/// The binding error of `r`: the input it names and its message.
fn binding_error<T>(r: Result<T, Error>) -> (String, String) {
    match r {
        Err(Error::Runtime(RuntimeError::Binding { name, message })) => (name, message),
        Err(e) => panic!("not a binding error: {e}"),
        Ok(_) => panic!("no error"),
    }
}

#[test]
fn a_pinned_input_of_the_wrong_shape_is_the_binding_error_of_a_passed_one() {
    let module = compile_zoo("rgat", &zoo()[3].1);
    let case = Case::new(module, adversarial_graphs().remove(0), 3);
    let (name, t) = case.inputs[0].clone();
    // One row short.
    let short = Tensor::from_vec(t.rows - 1, t.shape.clone(), t.data[t.shape.numel()..].to_vec())
        .expect("tensor");
    let mut wrong = case.inputs.clone();
    wrong[0].1 = short.clone();
    for precision in ENGINES {
        let passed = binding_error(case.step(&case.gradients(&[], precision), &wrong));
        let mut grads = case.gradients(&[], precision);
        grads.pin(vec![(name.clone(), short.clone())]).expect("pinning checks no plan");
        let pinned = binding_error(case.step(&grads, &case.inputs[1..]));
        assert_eq!(pinned.0, name, "{precision:?}");
        assert_eq!(pinned, passed, "{precision:?}: the same message");
    }
}

#[test]
fn an_input_both_pinned_and_passed_or_pinned_twice_is_a_binding_error() {
    let module = compile_zoo("rgcn", &zoo()[0].1);
    let case = Case::new(module, adversarial_graphs().remove(0), 5);
    let name = case.inputs[0].0.clone();
    for precision in ENGINES {
        let mut grads = case.gradients(&[], precision);
        grads.pin(case.inputs.clone()).expect("pin");
        let (n, message) = binding_error(case.step(&grads, &case.inputs[..1]));
        assert_eq!(n, name, "{precision:?}");
        assert!(message.contains("both"), "{precision:?}: {message}");
        let twice = vec![case.inputs[0].clone(), case.inputs[0].clone()];
        let (n, message) = binding_error(grads.pin(twice));
        assert_eq!(n, name, "{precision:?}");
        assert!(message.contains("twice"), "{precision:?}: {message}");
    }
}

/// The plan of `case`'s model compiled for its graph.
fn plan(case: &Case) -> pigeon::ir::plan::Plan {
    let stats = pigeon::runtime::layout::graph_stats(&case.graph);
    pigeon::passes::compile(&case.module, &stats, &Default::default(), None)
        .expect("compile")
        .plan
        .expect("a plan")
}

#[test]
fn the_cpu_back_end_reads_uploaded_inputs_in_place_and_refuses_ambiguous_ones() {
    let module = compile_zoo("hgt", &zoo()[6].1);
    let case = Case::new(module, adversarial_graphs().remove(3), 9);
    let plan = plan(&case);
    for precision in [Precision::F64, Precision::F32] {
        let backend = CpuBackend::with_threads(precision, Some(1));
        let want = backend.execute(&plan, &case.graph, &case.inputs, &case.weights).expect("run");
        let resident = backend.upload(&case.inputs).expect("upload").expect("the CPU keeps inputs");
        assert_eq!(resident.names().len(), case.inputs.len());
        for _ in 0..2 {
            let inputs = Inputs { resident: Some(&resident), ..Inputs::default() };
            let (got, kept) = backend
                .execute_kept(&plan, &case.graph, inputs, &case.weights, &|_| false)
                .expect("resident run");
            assert!(kept.is_none());
            assert!(bits(&got.outputs) == bits(&want.outputs), "{precision:?}");
        }
        // A name both resident and passed.
        let inputs = Inputs { host: &case.inputs[..1], resident: Some(&resident), kept: None };
        let r = backend.execute_kept(&plan, &case.graph, inputs, &case.weights, &|_| false);
        let e = binding_error(r.map_err(Error::Runtime));
        assert_eq!(e.0, case.inputs[0].0);
        // Uploads are checked: two values of one name, values that do not fill their rows.
        let twice = [case.inputs[0].clone(), case.inputs[0].clone()];
        assert!(matches!(backend.upload(&twice), Err(RuntimeError::Binding { .. })));
        let mut ragged = case.inputs[0].clone();
        ragged.1.data.pop();
        assert!(matches!(backend.upload(&[ragged]), Err(RuntimeError::Binding { .. })));
    }
    // Values uploaded in one precision are refused by an execution in the other.
    let f32s = CpuBackend::new(Precision::F32).upload(&case.inputs).expect("upload").expect("kept");
    let inputs = Inputs { resident: Some(&f32s), ..Inputs::default() };
    let r = CpuBackend::new(Precision::F64).execute_kept(
        &plan,
        &case.graph,
        inputs,
        &case.weights,
        &|_| false,
    );
    assert!(matches!(r, Err(RuntimeError::Internal(_))));
}
