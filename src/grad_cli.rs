//! `pigeon grad` (the gradient of `sum(out * G)` for every weight, for checking against peers)
//! and `pigeon bench --train` (the time of one training step: forward plus backward with such a
//! loss). Both run the differentiated model on the reference interpreter.

use crate::bench::BenchArgs;
use crate::{load_graph, ModelArgs};
use anyhow::{anyhow, bail, Context, Result};
use pigeon::runtime::rng::Rng;
use pigeon::runtime::tensor::Tensor;
use pigeon::runtime::weights::{load_tensors, WeightStore};
use pigeon::train::Gradients;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Arguments of `pigeon grad`.
#[derive(clap::Args)]
pub struct GradArgs {
    /// The `.rgnn` file.
    file: PathBuf,
    /// The graph spec (see `pigeon run --help`).
    #[arg(long)]
    graph: String,
    #[command(flatten)]
    model: ModelArgs,
    /// Weights (safetensors, as `pigeon run --weights`); default: initialised from `--seed`.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// The cotangent G: a safetensors file with one tensor per output, named as the output
    /// (`out`), of shape `[rows, ..]`.
    #[arg(long)]
    cotangent: PathBuf,
    /// Input values (safetensors, as written by `pigeon run --save-inputs`); inputs not in the
    /// file are bound as `pigeon run` binds them.
    #[arg(long)]
    inputs: Option<PathBuf>,
    /// Seed of initialised weights and random inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to write the gradients: one tensor per weight, named and shaped as in a weights
    /// file (written atomically).
    #[arg(short, long)]
    output: PathBuf,
}

/// `pigeon grad`.
pub fn grad(args: &GradArgs) -> Result<()> {
    pigeon::runtime::io::check_writable(&args.output)?;
    let src = pigeon::read_source(&args.file)?;
    let module = pigeon::compile(&src, args.model.model.as_deref(), &args.model.params)?;
    let graph = load_graph(&args.graph)?;
    let (r, t) = (graph.num_relations(), graph.num_node_types());
    let weights = match &args.weights {
        Some(p) => WeightStore::load(p, &module, r, t)?,
        None => WeightStore::try_init(&module, r, t, args.seed)?,
    };
    let (mut inputs, _) = pigeon::runtime::bind::bind_inputs(&module, &graph, args.seed)?;
    if let Some(p) = &args.inputs {
        for (name, value) in load_tensors(p)? {
            if let Some(slot) = inputs.iter_mut().find(|(n, _)| *n == name) {
                if (slot.1.rows, &slot.1.shape) != (value.rows, &value.shape) {
                    bail!("{}: input `{name}` has the wrong shape", p.display());
                }
                slot.1 = value;
            }
        }
    }
    let seeds = load_tensors(&args.cotangent)
        .with_context(|| format!("the cotangent {}", args.cotangent.display()))?;
    for (name, _) in &seeds {
        if !module.outputs.iter().any(|(o, _)| o == name) {
            bail!("{}: the model has no output `{name}`", args.cotangent.display());
        }
    }
    let grads = Gradients::new(&module, &[])?;
    let fwd = grads.forward(&graph, &inputs, &weights)?;
    for (name, s) in &seeds {
        let out = fwd.outputs.iter().find(|(n, _)| n == name).map(|(_, t)| t);
        if out.is_some_and(|o| (o.rows, &o.shape) != (s.rows, &s.shape)) {
            bail!("{}: `{name}` does not have the output's shape", args.cotangent.display());
        }
    }
    let outs = grads.backward(&graph, &mut inputs, &weights, fwd, seeds)?;
    let mut store = weights.clone();
    for ((_, name), t) in grads.weight_grads().iter().zip(store.tensors_mut()) {
        let g = outs.iter().find(|(n, _)| n == name).ok_or_else(|| anyhow!("no `{name}`"))?;
        *t = g.1.clone();
    }
    store.save(&args.output, &module)?;
    println!("wrote {} ({} weight gradients)", args.output.display(), grads.weight_grads().len());
    Ok(())
}

/// Median time of one training step of `sum(out * G)` for a random G, for `pigeon bench
/// --train`, on plans compiled with `plans` (switches, back end) or on the reference
/// interpreter: the median, the number of timed steps, and what ran them. Every input is
/// constant here, so all are pinned (`Gradients::pin`), as a trainer pins its constant ones.
pub fn train_step_times(
    args: &BenchArgs,
    file: &std::path::Path,
    graph_spec: &str,
    model: &ModelArgs,
    plans: Option<(pigeon::passes::Options, Box<dyn pigeon::runtime::backend::Backend>)>,
) -> Result<StepTimes> {
    let src = pigeon::read_source(file)?;
    let module = pigeon::compile(&src, model.model.as_deref(), &model.params)?;
    let graph = load_graph(graph_spec)?;
    let (r, t) = (graph.num_relations(), graph.num_node_types());
    let weights = WeightStore::try_init(&module, r, t, 0)?;
    let (bound, _) = pigeon::runtime::bind::bind_inputs(&module, &graph, 0)?;
    let mut grads = Gradients::new(&module, &[])?;
    if let Some((options, backend)) = plans {
        grads = grads.compile(&graph, &options, backend)?;
    }
    grads.pin(bound)?;
    let mut inputs = Vec::new();
    let mut rng = Rng::new(7919);
    let probe = grads.forward(&graph, &inputs, &weights)?;
    let seeds: Vec<(String, Tensor)> = module
        .outputs
        .iter()
        .filter_map(|(name, _)| probe.outputs.iter().find(|(n, _)| n == name))
        .map(|(name, o)| {
            let data = (0..o.data.len()).map(|_| rng.normal()).collect();
            (name.clone(), Tensor { rows: o.rows, shape: o.shape.clone(), data })
        })
        .collect();
    drop(probe);
    let (warmup, runs) = args.train_runs();
    let bar = indicatif::ProgressBar::new((warmup + runs) as u64);
    let mut times = Vec::with_capacity(runs);
    let mut profiles = Vec::with_capacity(runs);
    for i in 0..warmup + runs {
        let start = Instant::now();
        let fwd = grads.forward(&graph, &inputs, &weights)?;
        let _ = grads.backward(&graph, &mut inputs, &weights, fwd, seeds.clone())?;
        if i >= warmup {
            times.push(start.elapsed());
            profiles.push(grads.last_profiles());
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    times.sort();
    let transfers = |which: usize| -> Duration {
        let mut ts: Vec<Duration> =
            profiles.iter().filter_map(|p| Some(p[which].as_ref()?.transfers)).collect();
        ts.sort();
        ts.get(ts.len() / 2).copied().unwrap_or_default()
    };
    let kernels = |which: usize| -> Vec<(String, Duration)> {
        let Some(plan) = grads.plans().map(|p| if which == 0 { p.0 } else { p.1 }) else {
            return Vec::new();
        };
        plan.kernels
            .iter()
            .enumerate()
            .map(|(i, (id, k))| {
                let mut ts: Vec<Duration> = profiles
                    .iter()
                    .filter_map(|p| p[which].as_ref()?.per_kernel.get(i).map(|x| x.1))
                    .collect();
                ts.sort();
                (
                    format!("{id} {}", crate::bench::template(k)),
                    ts.get(ts.len() / 2).copied().unwrap_or_default(),
                )
            })
            .collect()
    };
    Ok(StepTimes {
        median: times[times.len() / 2],
        runs,
        engine: grads.engine_name(),
        forward: kernels(0),
        backward: kernels(1),
        transfers: [transfers(0), transfers(1)],
    })
}

/// What `train_step_times` measured.
pub struct StepTimes {
    /// The median step.
    pub median: Duration,
    /// Timed steps.
    pub runs: usize,
    /// What ran them.
    pub engine: String,
    /// Each forward kernel with its median time (empty on the reference interpreter).
    pub forward: Vec<(String, Duration)>,
    /// Each backward kernel with its median time.
    pub backward: Vec<(String, Duration)>,
    /// The median host time of the forward and of the backward execution outside kernels
    /// binding inputs and weights and returning outputs (`Profile::transfers`; zero on the
    /// reference interpreter).
    pub transfers: [Duration; 2],
}
