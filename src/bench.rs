//! `pigeon bench`: times a compiled model on a graph with the CPU or CUDA back end. Reports
//! the median of several runs after warm-up, per kernel and in total, each kernel's achieved
//! bandwidth (the fewest bytes it must move over its time, see [`kernel_bytes`]), the peak
//! memory of the plan's buffers and of the process, and with `--ablation` the same for each
//! optimisation switched off on its own. `--json FILE` writes the numbers for scripts
//! (`bench/pyg_compare.py`).

use crate::run::{executor, BackendArg, Executor};
use crate::{load_graph, ModelArgs, OptArgs};
use anyhow::{anyhow, Result};
use pigeon::ir::plan::{BufferId, Epilogue, Kernel, Plan, RowSpace, Schedule, StmtOp};
use pigeon::ir::{Endpoint, GraphStats};
use pigeon::passes::Options;
use pigeon::runtime::backend::Profile;
use pigeon::runtime::{self, HeteroGraph};
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `pigeon bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// The `.rgnn` file.
    pub file: PathBuf,
    /// The graph spec (see `pigeon run --help`).
    #[arg(long)]
    pub graph: String,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    opt: OptArgs,
    /// Timed runs (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Untimed warm-up runs.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Worker threads of the CPU back end (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// The executor: `auto` takes the GPU when one is present.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendArg,
    /// Also time each optimisation switched off on its own, and all off.
    #[arg(long)]
    ablation: bool,
    /// Write the results as JSON to this file (atomically).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Time a training step instead: forward plus backward of `sum(out * G)` for a random G,
    /// as plans on the chosen back end (`--backend reference`: on the interpreter), with the
    /// inputs pinned to the back end once as a trainer pins its constant inputs.
    #[arg(long)]
    train: bool,
}

impl BenchArgs {
    /// `(warm-up, timed)` runs.
    pub fn train_runs(&self) -> (usize, usize) {
        (self.warmup, self.runs.max(1))
    }
}

/// One measured configuration.
struct Measured {
    label: &'static str,
    options: Options,
    /// Each kernel's name, median time and fewest bytes moved.
    kernels: Vec<(String, Duration, usize)>,
    total: Duration,
    layouts: Duration,
    /// Host time binding inputs and weights and widening outputs (`Profile::transfers`).
    transfers: Duration,
    plan_bytes: usize,
    compact_rows_saved: Option<String>,
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs.get(xs.len() / 2).copied().unwrap_or_default()
}

/// The process's peak resident memory (VmHWM), where the OS reports it.
fn peak_rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub fn bench(args: &BenchArgs) -> Result<()> {
    if args.train {
        return bench_train(args);
    }
    let src = pigeon::read_source(&args.file)?;
    let module = pigeon::compile(&src, args.model.model.as_deref(), &args.model.params)?;
    let graph = load_graph(&args.graph)?;
    let (r, t) = (graph.num_relations(), graph.num_node_types());
    let weights = runtime::weights::WeightStore::try_init(&module, r, t, 0)?;
    let (inputs, _) = runtime::bind::bind_inputs(&module, &graph, 0)?;
    if args.backend == BackendArg::Reference {
        return Err(anyhow!("`pigeon bench` times plans; use --backend cpu, cuda or auto"));
    }
    let exec = executor(args.backend, &args.opt, args.threads)?;

    let mut configs = vec![("default", args.opt.options())];
    if args.ablation {
        let base = args.opt.options();
        configs.push(("no-reorder", Options { reorder: false, ..base.clone() }));
        configs.push(("no-compact", Options { compact: false, ..base.clone() }));
        configs.push(("no-fuse", Options { fuse: false, ..base }));
        configs.push(("O0", Options::none()));
    }
    let runs = args.runs.max(1);
    let bar = indicatif::ProgressBar::new((configs.len() * (runs + args.warmup)) as u64);
    let mut results = Vec::new();
    for (label, options) in configs {
        bar.set_message(label);
        let m = measure(&module, &graph, &inputs, &weights, &exec, args, label, options, &bar)?;
        results.push(m);
    }
    bar.finish_and_clear();
    report(args, &exec, &module, &graph, &results)
}

/// `pigeon bench --train`.
fn bench_train(args: &BenchArgs) -> Result<()> {
    // `--backend auto` takes the GPU when there is one, as for inference.
    let plans = executor(args.backend, &args.opt, args.threads)?
        .backend
        .map(|backend| (args.opt.options(), backend));
    let steps =
        crate::grad_cli::train_step_times(args, &args.file, &args.graph, &args.model, plans)?;
    let (median, runs, backend) = (steps.median, steps.runs, steps.engine);
    let rss = peak_rss_bytes();
    println!(
        "training step (forward + backward) of {} on {}: median {:.3} ms over {runs} runs; {backend}; peak RSS {}",
        args.file.display(),
        args.graph,
        ms(median),
        rss.map(|r| runtime::memory::human(r as u128)).unwrap_or_else(|| "-".into())
    );
    let passes = [("forward", &steps.forward), ("backward", &steps.backward)];
    for ((pass, kernels), transfers) in passes.into_iter().zip(steps.transfers) {
        if !kernels.is_empty() {
            let total: Duration = kernels.iter().map(|(_, d)| *d).sum();
            println!(
                "  {pass} kernels: {:.3} ms; transfers (binding inputs and weights, outputs): {:.3} ms",
                ms(total),
                ms(transfers)
            );
        }
        for (name, d) in kernels.iter() {
            println!("    {name:<16} {:>10.3} ms", ms(*d));
        }
    }
    if let Some(path) = &args.json {
        let total = |k: &[(String, Duration)]| ms(k.iter().map(|(_, d)| *d).sum());
        let text = format!(
            "{{\"model\": \"{}\", \"graph\": \"{}\", \"backend\": \"{backend}\", \"train\": true, \"runs\": {runs}, \"train_step_ms_median\": {:.6}, \"peak_rss_bytes\": {}, \"forward_kernels_ms\": {:.6}, \"backward_kernels_ms\": {:.6}, \"forward_transfers_ms\": {:.6}, \"backward_transfers_ms\": {:.6}}}\n",
            esc(&args.file.display().to_string()),
            esc(&args.graph),
            ms(median),
            rss.map(|r| r.to_string()).unwrap_or_else(|| "null".into()),
            total(&steps.forward),
            total(&steps.backward),
            ms(steps.transfers[0]),
            ms(steps.transfers[1]),
        );
        runtime::io::write_atomic(path, text.as_bytes())?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn measure(
    module: &pigeon::ir::Module,
    graph: &HeteroGraph,
    inputs: &[(String, runtime::tensor::Tensor)],
    weights: &runtime::weights::WeightStore,
    exec: &Executor,
    args: &BenchArgs,
    label: &'static str,
    options: Options,
    bar: &indicatif::ProgressBar,
) -> Result<Measured> {
    let stats = runtime::layout::graph_stats(graph);
    let compiled = pigeon::passes::compile(module, &stats, &options, None)?;
    let compact_rows_saved = compiled
        .reports
        .iter()
        .find(|(p, _)| *p == "materialize-compact")
        .map(|(_, r)| r.lines().next().unwrap_or_default().to_string());
    let plan = compiled.plan.ok_or_else(|| anyhow!("the pipeline produced no plan"))?;
    let backend = exec.backend.as_ref().ok_or_else(|| anyhow!("no plan executor"))?;
    let mut profiles: Vec<Profile> = Vec::new();
    for i in 0..args.warmup + args.runs.max(1) {
        let exec = backend.execute(&plan, graph, inputs, weights)?;
        if i >= args.warmup {
            profiles.push(exec.profile);
        }
        bar.inc(1);
    }
    let kernels = plan
        .kernels
        .iter()
        .enumerate()
        .map(|(i, (id, k))| {
            let template = template(k);
            let times = profiles.iter().filter_map(|p| p.per_kernel.get(i).map(|x| x.1)).collect();
            (format!("{id} {template}"), median(times), kernel_bytes(&plan, k, &stats))
        })
        .collect();
    Ok(Measured {
        label,
        options,
        kernels,
        total: median(profiles.iter().map(Profile::kernels_total).collect()),
        layouts: median(profiles.iter().map(|p| p.layouts).collect()),
        transfers: median(profiles.iter().map(|p| p.transfers).collect()),
        plan_bytes: profiles.first().map(|p| p.peak_bytes).unwrap_or(0),
        compact_rows_saved,
    })
}

/// The template a kernel instantiates, for reports.
pub fn template(k: &Kernel) -> &'static str {
    match k {
        Kernel::Gemm(_) => "gemm",
        Kernel::Traversal(_) => "traversal",
        Kernel::WeightGrad(_) => "weight_grad",
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(
    args: &BenchArgs,
    exec: &Executor,
    module: &pigeon::ir::Module,
    graph: &HeteroGraph,
    results: &[Measured],
) -> Result<()> {
    let threads = args.threads.unwrap_or_else(rayon_threads);
    println!(
        "{} on {}: {} nodes, {} edges, {} relations; {}, median of {} after {} warm-up",
        module.name,
        graph.name,
        graph.num_nodes(),
        graph.num_edges(),
        graph.num_relations(),
        exec.description,
        args.runs.max(1),
        args.warmup
    );
    if let Some(first) = results.first() {
        println!("  {:<16} {:>10} {:>12} {:>10}", "kernel", "ms", "fewest MB", "GB/s");
        for (name, d, bytes) in &first.kernels {
            println!(
                "  {name:<16} {:>10.3} {:>12.2} {:>10.1}",
                ms(*d),
                *bytes as f64 / 1e6,
                *bytes as f64 / d.as_secs_f64().max(1e-12) / 1e9
            );
        }
    }
    println!(
        "  {:<12} {:>10} {:>10} {:>10} {:>8} {:>12}",
        "config", "total ms", "layouts", "transfers", "kernels", "buffers MiB"
    );
    for m in results {
        println!(
            "  {:<12} {:>10.3} {:>10.3} {:>10.3} {:>8} {:>12.2}",
            m.label,
            ms(m.total),
            ms(m.layouts),
            ms(m.transfers),
            m.kernels.len(),
            m.plan_bytes as f64 / (1 << 20) as f64
        );
        if let Some(c) = &m.compact_rows_saved {
            println!("  {:<12} compaction: {c}", "");
        }
    }
    let rss = peak_rss_bytes();
    if let Some(rss) = rss {
        println!("  peak process memory (VmHWM) {:.1} MiB", rss as f64 / (1 << 20) as f64);
    }
    if let Some(path) = &args.json {
        let text = json(module, graph, threads, &exec.description, results, rss);
        runtime::io::write_atomic(path, text.as_bytes())?;
    }
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn json(
    module: &pigeon::ir::Module,
    graph: &HeteroGraph,
    threads: usize,
    backend: &str,
    results: &[Measured],
    rss: Option<usize>,
) -> String {
    let configs: Vec<String> = results
        .iter()
        .map(|m| {
            let kernels: Vec<String> = m
                .kernels
                .iter()
                .map(|(k, d, b)| {
                    format!(
                        "{{\"kernel\": \"{}\", \"ms\": {:.6}, \"fewest_bytes\": {b}}}",
                        esc(k),
                        ms(*d)
                    )
                })
                .collect();
            format!(
                "{{\"config\": \"{}\", \"reorder\": {}, \"compact\": {}, \"fuse\": {}, \"total_ms\": {:.6}, \"layouts_ms\": {:.6}, \"transfers_ms\": {:.6}, \"buffer_bytes\": {}, \"kernels\": [{}]}}",
                m.label,
                m.options.reorder,
                m.options.compact,
                m.options.fuse,
                ms(m.total),
                ms(m.layouts),
                ms(m.transfers),
                m.plan_bytes,
                kernels.join(", ")
            )
        })
        .collect();
    format!(
        "{{\"model\": \"{}\", \"graph\": \"{}\", \"nodes\": {}, \"edges\": {}, \"relations\": {}, \"threads\": {threads}, \"backend\": \"{}\", \"peak_rss_bytes\": {}, \"configs\": [{}]}}\n",
        esc(&module.name),
        esc(&graph.name),
        graph.num_nodes(),
        graph.num_edges(),
        graph.num_relations(),
        esc(backend),
        rss.map(|r| r.to_string()).unwrap_or_else(|| "null".into()),
        configs.join(", ")
    )
}

/// Rows of `space` on a graph of sizes `stats`.
fn rows_of(space: RowSpace, stats: &GraphStats) -> usize {
    match space {
        RowSpace::Nodes => stats.nodes,
        RowSpace::Edges => stats.edges,
        RowSpace::Compact(Endpoint::Src) => stats.compact_src_rows,
        RowSpace::Compact(Endpoint::Dst) => stats.compact_dst_rows,
        RowSpace::Relations => stats.relations,
        RowSpace::NodeTypes => stats.node_types,
        RowSpace::One => 1,
    }
}

/// The fewest bytes a kernel must move through memory: every buffer it reads, read once in
/// full; every buffer it writes, written once (read and written when it accumulates); one
/// 4-byte index per iteration row for the gathers and scatters through the graph. A floor,
/// not a count of what the kernel does: achieved bandwidth is this over the kernel's time.
pub fn kernel_bytes(plan: &Plan, kernel: &Kernel, stats: &GraphStats) -> usize {
    let bytes = |b: BufferId| {
        plan.buffers.get(b).map_or(0, |buf| rows_of(buf.rows, stats) * buf.shape.numel() * 4)
    };
    let mut read: Vec<BufferId> = Vec::new();
    let mut total = 0;
    match kernel {
        Kernel::Gemm(g) => {
            read.extend([g.a, g.b]);
            for e in &g.epilogue {
                if let Epilogue::Scale { buf, .. } | Epilogue::Add { buf, .. } = e {
                    read.push(*buf);
                }
            }
            let accumulates = g.store.accumulates();
            total += bytes(g.c) * if accumulates { 2 } else { 1 };
            total += 4 * rows_of(g.rows, stats) * (1 + usize::from(accumulates));
        }
        Kernel::WeightGrad(g) => {
            read.extend(g.a.map(|a| a.0));
            read.push(g.b.0);
            total += bytes(g.c) + 4 * rows_of(g.rows, stats);
        }
        Kernel::Traversal(t) => {
            let space = match t.schedule {
                Schedule::Rows(s) => s,
                Schedule::NodeParallel | Schedule::EdgeParallel => RowSpace::Edges,
            };
            for s in &t.body {
                match s.op {
                    StmtOp::Load { buf, .. } | StmtOp::MatVec { w: buf, .. } => read.push(buf),
                    StmtOp::Store { buf, .. } => total += bytes(buf),
                    _ => {}
                }
            }
            total += 4 * rows_of(space, stats);
        }
    }
    read.sort();
    read.dedup();
    total + read.into_iter().map(bytes).sum::<usize>()
}
