//! Ahead-of-time compilation: the library side of `pigeon compile` and the API a `build.rs`
//! uses to compile a model at build time and embed its plan and PTX, so that the program that
//! runs it needs only the NVIDIA driver (see `examples/embedded/`).
//!
//! ```no_run
//! // build.rs
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
//! let request = pigeon::build::Request::new("model.rgnn").with_ptx("sm_90");
//! let artifacts = pigeon::build::compile(&request)?;
//! artifacts.write(&out, &[pigeon::build::Emit::Plan, pigeon::build::Emit::Ptx])?;
//! println!("cargo:rerun-if-changed=model.rgnn");
//! # Ok(())
//! # }
//! ```

use crate::{codegen, ir, passes, runtime, Error};
use std::path::{Path, PathBuf};

/// What to compile.
#[derive(Clone, Debug)]
pub struct Request {
    /// The `.rgnn` file.
    pub file: PathBuf,
    /// The model (default: the file's last).
    pub model: Option<String>,
    /// Parameter overrides.
    pub params: Vec<(String, i64)>,
    /// The graph sizes the optimiser plans for (default: [`crate::default_stats`]).
    pub stats: ir::GraphStats,
    /// Optimisation switches.
    pub options: passes::Options,
    /// Code generation options.
    pub codegen: codegen::Options,
    /// Compile PTX for this architecture (`sm_80`, `sm_90`) with NVRTC.
    pub ptx_arch: Option<String>,
}

impl Request {
    /// Compiles `file`'s last model with default sizes and options, CUDA source only.
    pub fn new(file: impl Into<PathBuf>) -> Self {
        Self {
            file: file.into(),
            model: None,
            params: Vec::new(),
            stats: crate::default_stats(),
            options: passes::Options::default(),
            codegen: codegen::Options::default(),
            ptx_arch: None,
        }
    }
    /// Also compiles PTX for `arch`.
    pub fn with_ptx(mut self, arch: &str) -> Self {
        self.ptx_arch = Some(arch.to_string());
        self
    }
    /// Plans for the sizes of this graph.
    pub fn with_stats(mut self, stats: ir::GraphStats) -> Self {
        self.stats = stats;
        self
    }
    /// Sets a parameter.
    pub fn with_param(mut self, name: &str, value: i64) -> Self {
        self.params.push((name.to_string(), value));
        self
    }
}

/// What one compilation produced.
#[derive(Clone, Debug)]
pub struct Artifacts {
    /// The inter-operator IR the plan implements (what binds inputs and weights).
    pub module: ir::Module,
    /// The kernel plan.
    pub plan: ir::plan::Plan,
    /// The CUDA program (source and launches).
    pub cuda: codegen::CudaProgram,
    /// PTX and its architecture, when asked for.
    pub ptx: Option<(String, String)>,
}

/// A kind of output file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Emit {
    /// `<model>.ir`: the inter-operator IR's text form (parses back with `ir::parse`).
    Module,
    /// `<model>.plan`: the kernel plan's text form (parses back with `ir::plan_parse`).
    Plan,
    /// `<model>.cu`: the CUDA C++ source.
    Cuda,
    /// `<model>.<arch>.ptx`: PTX.
    Ptx,
}

/// Compiles a model to a plan, CUDA source and, when asked, PTX.
pub fn compile(req: &Request) -> Result<Artifacts, Error> {
    let src = crate::read_source(&req.file)?;
    let (module, compiled) = crate::compile_plan(
        &src,
        req.model.as_deref(),
        &req.params,
        &req.stats,
        &req.options,
        None,
    )?;
    let plan = compiled.plan.ok_or_else(|| {
        Error::Verify("the optimisation pipeline produced no kernel plan".to_string())
    })?;
    let cuda = codegen::generate(&plan, &req.codegen)?;
    let ptx = match &req.ptx_arch {
        Some(arch) => Some((arch.clone(), runtime::cuda::compile_ptx(&cuda.source, arch)?)),
        None => None,
    };
    Ok(Artifacts { module, plan, cuda, ptx })
}

impl Artifacts {
    /// The model's file stem (a C identifier).
    pub fn stem(&self) -> String {
        codegen::c_ident(&self.plan.name)
    }

    /// Writes the requested files into `dir` (each atomically) and returns their paths.
    pub fn write(&self, dir: &Path, emit: &[Emit]) -> Result<Vec<PathBuf>, Error> {
        let stem = self.stem();
        let mut written = Vec::new();
        for e in emit {
            let (name, text) = match e {
                Emit::Module => (format!("{stem}.ir"), ir::text::print(&self.module)),
                Emit::Plan => (format!("{stem}.plan"), ir::plan_text::print_plan(&self.plan)),
                Emit::Cuda => (format!("{stem}.cu"), self.cuda.source.clone()),
                Emit::Ptx => match &self.ptx {
                    Some((arch, ptx)) => (format!("{stem}.{arch}.ptx"), ptx.clone()),
                    None => continue,
                },
            };
            let path = dir.join(name);
            runtime::io::write_atomic(&path, text.as_bytes())?;
            written.push(path);
        }
        Ok(written)
    }
}
