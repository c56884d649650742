//! `pigeon run`: compile a model, load a graph, execute on the chosen back end (the GPU when
//! one is present and `--backend auto`), print a summary, optionally check against the
//! reference interpreter and save outputs.

use crate::{load_graph, spinner, ModelArgs, OptArgs};
use anyhow::{anyhow, bail, Result};
use clap::ValueEnum;
use pigeon::runtime;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Which executor runs the plan.
#[derive(Copy, Clone, Debug, ValueEnum, PartialEq)]
pub enum BackendArg {
    /// The GPU when one is present (CUDA), the CPU otherwise.
    Auto,
    /// The f64 reference interpreter of the inter-operator IR (the oracle).
    Reference,
    /// The optimised CPU back end (rayon, matrixmultiply).
    Cpu,
    /// The CUDA back end (NVRTC-compiled kernels on GPU 0).
    Cuda,
}

/// A plan executor chosen from the command line, with a description for the summary.
pub struct Executor {
    /// The back end (`None` for the reference interpreter).
    pub backend: Option<Box<dyn runtime::backend::Backend>>,
    /// What runs, for messages: `cpu (f32, 2 threads)`, `cuda (NVIDIA H100, sm_90)`.
    pub description: String,
    /// The element type of its results.
    pub precision: &'static str,
}

/// Chooses the executor: `auto` takes the GPU when the probe finds one and says why not
/// otherwise.
pub fn executor(choice: BackendArg, opt: &OptArgs, threads: Option<usize>) -> Result<Executor> {
    let cpu = |why: Option<String>| {
        let backend = runtime::cpu::CpuBackend::with_threads(opt.precision(), threads);
        let threads = threads
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
        let mut description = format!("cpu ({}, {threads} threads)", opt.precision_name());
        if let Some(why) = why {
            description = format!("{description}; no GPU: {why}");
        }
        Executor { backend: Some(Box::new(backend)), description, precision: opt.precision_name() }
    };
    match choice {
        BackendArg::Reference => Ok(Executor {
            backend: None,
            description: "reference interpreter (f64)".into(),
            precision: "f64",
        }),
        BackendArg::Cpu => Ok(cpu(None)),
        BackendArg::Cuda => Ok(cuda(opt)?),
        BackendArg::Auto => match cuda(opt) {
            Ok(e) => Ok(e),
            // The probe's reason without the list of library names it tried.
            Err(e) => Ok(cpu(Some(format!("{e:#}").split(" (tried").next().unwrap_or("").into()))),
        },
    }
}

fn cuda(opt: &OptArgs) -> Result<Executor> {
    let backend = runtime::cuda::CudaBackend::new(0, opt.codegen_options())?;
    let d = backend.device();
    let description = format!(
        "cuda ({}, {}, {:.1} GiB, gemm {:?})",
        d.name,
        d.arch,
        d.total_bytes as f64 / (1u64 << 30) as f64,
        opt.codegen_options().gemm_math
    );
    Ok(Executor { backend: Some(Box::new(backend)), description, precision: "f32" })
}

/// Options of `pigeon run` besides the model and the graph.
pub struct RunOptions {
    pub seed: u64,
    pub weights: Option<PathBuf>,
    pub save_weights: Option<PathBuf>,
    pub output: Option<PathBuf>,
    pub save_inputs: Option<PathBuf>,
    pub check: bool,
    pub backend: BackendArg,
}

pub fn run(
    file: &Path,
    spec: &str,
    model: &ModelArgs,
    opt: &OptArgs,
    opts: &RunOptions,
) -> Result<()> {
    // Refuse unwritable destinations before the (possibly long) run, not after it.
    for path in [&opts.output, &opts.save_weights, &opts.save_inputs].into_iter().flatten() {
        runtime::io::check_writable(path)?;
    }
    let exec = executor(opts.backend, opt, None)?;
    let t0 = Instant::now();
    let src = pigeon::read_source(file)?;
    let module = pigeon::compile(&src, model.model.as_deref(), &model.params)?;
    let t_compile = t0.elapsed();

    let t1 = Instant::now();
    let graph = load_graph(spec)?;
    let t_load = t1.elapsed();

    let (r, t) = (graph.num_relations(), graph.num_node_types());
    let weights = match &opts.weights {
        // The runtime's error already names the file.
        Some(path) => runtime::weights::WeightStore::load(path, &module, r, t)?,
        None => runtime::weights::WeightStore::try_init(&module, r, t, opts.seed)?,
    };
    if let Some(path) = &opts.save_weights {
        weights.save(path, &module)?;
    }
    let (inputs, notes) = runtime::bind::bind_inputs(&module, &graph, opts.seed)?;
    if let Some(path) = &opts.save_inputs {
        runtime::weights::save_tensors(path, &inputs)?;
    }

    let bar = spinner(format!("running {} on {} ({})", module.name, graph.name, exec.description));
    let t2 = Instant::now();
    let outputs = match &exec.backend {
        Some(backend) => {
            let stats = runtime::layout::graph_stats(&graph);
            let compiled = pigeon::passes::compile(&module, &stats, &opt.options(), None)?;
            let plan = compiled.plan.ok_or_else(|| anyhow!("the pipeline produced no plan"))?;
            backend.execute(&plan, &graph, &inputs, &weights).map(|e| e.outputs)
        }
        None => runtime::interp::interpret(&module, &graph, &inputs, &weights),
    };
    let t_run = t2.elapsed();
    bar.finish_and_clear();
    let outputs = outputs?;
    let check = if opts.check && exec.backend.is_some() {
        let want = runtime::interp::interpret(&module, &graph, &inputs, &weights)?;
        Some(max_relative_difference(&outputs, &want))
    } else {
        None
    };

    println!("model     {} ({})", module.name, params_text(&module));
    println!(
        "graph     {}: {} nodes, {} edges, {} relation{}, {} node type{}",
        graph.name,
        graph.num_nodes(),
        graph.num_edges(),
        r,
        plural(r),
        t,
        plural(t)
    );
    println!("backend   {}", exec.description);
    for note in &notes {
        println!("input     {note}");
    }
    for (name, tensor) in &outputs {
        println!(
            "output    {name}: {} x {} {}, sum {:.6e}, sum|x| {:.6e}",
            tensor.rows,
            tensor.shape,
            exec.precision,
            tensor.sum(),
            tensor.sum_abs()
        );
    }
    println!(
        "time      compile {:.1} ms, load {:.1} ms, run {:.1} ms (including planning{})",
        ms(t_compile),
        ms(t_load),
        ms(t_run),
        if exec.description.starts_with("cuda") { ", kernel compilation and uploads" } else { "" }
    );
    if let Some(diff) = check {
        println!("check     largest difference from the reference interpreter: {diff:.3e} (relative to the output's largest magnitude)");
        let tolerance = tolerance(exec.precision, opt);
        if diff > tolerance {
            bail!("the back end differs from the reference interpreter by {diff:.3e}, more than {tolerance:e}");
        }
    }
    if let Some(path) = &opts.output {
        runtime::weights::save_tensors(path, &outputs)?;
        println!("wrote     {}", path.display());
    }
    Ok(())
}

/// The largest relative difference `--check` accepts: f32 through a few chained products of
/// width <= a few hundred stays well inside 1e-4; TF32 tensor cores round operands to 10
/// mantissa bits (about 5e-4 relative per product), BF16 to 7 bits.
fn tolerance(precision: &str, opt: &OptArgs) -> f64 {
    match (precision, opt.codegen_options().gemm_math) {
        ("f64", _) => 1e-9,
        (_, pigeon::codegen::GemmMath::Tf32) => 5e-3,
        (_, pigeon::codegen::GemmMath::Bf16) => 3e-2,
        _ => 1e-4,
    }
}

/// The largest absolute difference between two sets of outputs, relative to the largest
/// magnitude of the reference.
fn max_relative_difference(
    got: &[(String, runtime::tensor::Tensor)],
    want: &[(String, runtime::tensor::Tensor)],
) -> f64 {
    let mut worst = 0.0f64;
    for ((_, g), (_, w)) in got.iter().zip(want) {
        let scale = w.data.iter().fold(f64::MIN_POSITIVE, |m, x| m.max(x.abs()));
        for (a, b) in g.data.iter().zip(&w.data) {
            worst = worst.max((a - b).abs() / scale);
        }
    }
    worst
}

fn params_text(module: &pigeon::ir::Module) -> String {
    let parts: Vec<String> = module.params.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    parts.join(", ")
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
