//! `pigeon compile`: ahead-of-time output of a model's kernel plan, CUDA source and PTX into a
//! directory (through `pigeon::build`).

use crate::{load_graph, ModelArgs, OptArgs};
use anyhow::Result;
use clap::ValueEnum;
use pigeon::build::{self, Emit, Request};
use std::path::PathBuf;

/// Arguments of `pigeon compile`.
#[derive(clap::Args)]
pub struct CompileArgs {
    /// The `.rgnn` file.
    file: PathBuf,
    /// What to write (repeatable, or comma-separated): the plan, CUDA C++, PTX.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cuda")]
    emit: Vec<EmitArg>,
    /// Output directory (created if missing).
    #[arg(short, long)]
    output: PathBuf,
    /// GPU architecture for PTX (`sm_80`, `sm_90`, ...).
    #[arg(long, default_value = "sm_90")]
    arch: String,
    /// Plan for the sizes of this graph (default: AIFB-like sizes).
    #[arg(long)]
    graph: Option<String>,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    opt: OptArgs,
}

/// An output kind.
#[derive(Copy, Clone, ValueEnum, PartialEq)]
enum EmitArg {
    /// The kernel plan (text IR).
    Plan,
    /// CUDA C++ source.
    Cuda,
    /// PTX compiled with NVRTC (needs libnvrtc, not a GPU).
    Ptx,
}

pub fn compile(args: &CompileArgs) -> Result<()> {
    let mut request = Request::new(&args.file);
    request.model = args.model.model.clone();
    request.params = args.model.params.clone();
    request.options = args.opt.options();
    request.codegen = args.opt.codegen_options();
    if let Some(spec) = &args.graph {
        request.stats = pigeon::runtime::layout::graph_stats(&load_graph(spec)?);
    }
    if args.emit.contains(&EmitArg::Ptx) {
        request = request.with_ptx(&args.arch);
    }
    let artifacts = build::compile(&request)?;
    std::fs::create_dir_all(&args.output)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", args.output.display()))?;
    let emit: Vec<Emit> = args
        .emit
        .iter()
        .map(|e| match e {
            EmitArg::Plan => Emit::Plan,
            EmitArg::Cuda => Emit::Cuda,
            EmitArg::Ptx => Emit::Ptx,
        })
        .collect();
    for path in artifacts.write(&args.output, &emit)? {
        println!("wrote {}", path.display());
    }
    println!(
        "{} kernels: {}",
        artifacts.cuda.kernels.len(),
        artifacts.cuda.kernels.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}
