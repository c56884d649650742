//! The CUDA executor: generate, compile (cached), check memory, upload, launch, download.
//!
//! One execution: `pigeon_codegen::generate` gives the source and a [`KernelLaunch`] per plan
//! kernel; the host side (`host.rs`) builds layouts, graph arrays, GEMM tables and the storage
//! plan; the estimate is checked against the device's free memory before anything is
//! allocated; the module is compiled with NVRTC for the device's architecture (cached in
//! memory per back end and on disk, `cache.rs`) and its functions loaded (cached per back end);
//! storages, graph arrays and tables are uploaded (graph arrays are uploaded again by every
//! execution: no cache by graph content yet); kernels are launched in order on one stream,
//! each between two timing events, empty grids skipped; the stream is synchronised once and
//! the outputs downloaded.
//!
//! Zeroing: every storage starts zeroed; a buffer accumulated into (`AddIntoDst`,
//! `AddIntoSrc`) before any kernel wrote it is zeroed again right before that kernel (its
//! storage may hold an earlier temp of the same slot), the rule of the CPU back end's
//! `prepare_writes`; a weight gradient's output is always zeroed right before its kernel, which
//! adds per-tile partial sums into it.

use super::device::{cuda_err, open};
use super::host::{self, alloc_len, GemmTables, Prepared};
use super::nvrtc::{compile_ptx, nvrtc_version, options, virtual_arch};
use super::{cache, values, DeviceInfo};
use crate::backend::{Backend, Execution, Profile};
use crate::error::{Result, RuntimeError};
use crate::graph::HeteroGraph;
use crate::tensor::Tensor;
use crate::weights::WeightStore;
use cudarc::driver::{
    sys, CudaContext, CudaEvent, CudaFunction, CudaModule, CudaSlice, CudaStream, LaunchConfig,
    PushKernelArg,
};
use cudarc::nvrtc::Ptx;
use pigeon_codegen::{CudaProgram, GraphArray, Grid, KernelLaunch, Options, Param};
use pigeon_ir::plan::{BufferId, Kernel, KernelId, Plan, StmtOp};
use pigeon_ir::EntityId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The module-cache key of PTX preloaded for a program's source.
fn preloaded_key(source: &str) -> u64 {
    cache::fnv1a(&[b"preloaded", source.as_bytes()])
}

/// A loaded module and the functions looked up in it.
struct Loaded {
    module: Arc<CudaModule>,
    functions: HashMap<String, CudaFunction>,
}

/// The CUDA back end: one GPU, one stream, modules cached by the hash of their source, target
/// architecture, NVRTC version and options.
pub struct CudaBackend {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    info: DeviceInfo,
    options: Options,
    modules: Mutex<HashMap<u64, Loaded>>,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend").field("device", &self.info).finish_non_exhaustive()
    }
}

impl CudaBackend {
    /// Opens GPU `ordinal` ([`RuntimeError::NoDevice`] when there is none) for plans generated
    /// with `options`. NVRTC is needed at the first execution, not here.
    pub fn new(ordinal: usize, options: Options) -> Result<Self> {
        let (ctx, info) = open(ordinal)?;
        let stream = ctx.new_stream().map_err(cuda_err("cuStreamCreate"))?;
        Ok(Self { ctx, stream, info, options, modules: Mutex::new(HashMap::new()) })
    }

    /// The device this back end runs on.
    pub fn device(&self) -> &DeviceInfo {
        &self.info
    }

    /// Loads PTX compiled ahead of time for `plan` (`pigeon compile --emit ptx`, or
    /// `pigeon::build` in a build script, with this back end's code generation options), so
    /// that executing `plan` needs no NVRTC: only the driver.
    pub fn preload_ptx(&self, plan: &Plan, ptx: &str) -> Result<()> {
        let program = pigeon_codegen::generate(plan, &self.options)?;
        let module = self
            .ctx
            .load_module(Ptx::from_src(ptx.to_string()))
            .map_err(cuda_err("cuModuleLoadData (preloaded PTX)"))?;
        let mut modules = self.lock_modules()?;
        modules
            .insert(preloaded_key(&program.source), Loaded { module, functions: HashMap::new() });
        Ok(())
    }

    fn lock_modules(&self) -> Result<std::sync::MutexGuard<'_, HashMap<u64, Loaded>>> {
        self.modules
            .lock()
            .map_err(|_| RuntimeError::Internal("the CUDA module cache lock is poisoned".into()))
    }

    /// The function of each launch of `program`, compiling and loading its module if needed.
    fn functions(&self, program: &CudaProgram) -> Result<Vec<CudaFunction>> {
        let preloaded = preloaded_key(&program.source);
        if self.lock_modules()?.contains_key(&preloaded) {
            return self.look_up(preloaded, program);
        }
        let (major, minor) = nvrtc_version()?;
        let varch = virtual_arch(&self.info.arch).ok_or_else(|| {
            RuntimeError::Unsupported(format!("GPU architecture `{}`", self.info.arch))
        })?;
        let key = cache::fnv1a(&[
            program.source.as_bytes(),
            varch.as_bytes(),
            format!("nvrtc {major}.{minor}").as_bytes(),
            options(&varch).join(" ").as_bytes(),
        ]);
        let mut modules = self.lock_modules()?;
        if let std::collections::hash_map::Entry::Vacant(slot) = modules.entry(key) {
            let module = self.load_module(key, &program.source)?;
            slot.insert(Loaded { module, functions: HashMap::new() });
        }
        drop(modules);
        self.look_up(key, program)
    }

    /// The functions of `program`'s launches in the loaded module `key`.
    fn look_up(&self, key: u64, program: &CudaProgram) -> Result<Vec<CudaFunction>> {
        let mut modules = self.lock_modules()?;
        let loaded = modules
            .get_mut(&key)
            .ok_or_else(|| RuntimeError::Internal("module cache lost an entry".into()))?;
        let mut out = Vec::with_capacity(program.kernels.len());
        for launch in &program.kernels {
            if let Some(f) = loaded.functions.get(&launch.name) {
                out.push(f.clone());
                continue;
            }
            if launch.name.contains('\0') {
                return Err(RuntimeError::Internal(format!("kernel name {:?}", launch.name)));
            }
            let f = loaded
                .module
                .load_function(&launch.name)
                .map_err(cuda_err(&format!("cuModuleGetFunction({})", launch.name)))?;
            loaded.functions.insert(launch.name.clone(), f.clone());
            out.push(f);
        }
        Ok(out)
    }

    /// Loads the module of `source`: cached PTX when present and loadable, else compiled.
    fn load_module(&self, key: u64, source: &str) -> Result<Arc<CudaModule>> {
        if let Some(ptx) = cache::load(key) {
            if let Ok(m) = self.ctx.load_module(Ptx::from_src(ptx)) {
                return Ok(m);
            }
        }
        let ptx = compile_ptx(source, &self.info.arch)?;
        cache::store(key, &ptx);
        self.ctx.load_module(Ptx::from_src(ptx)).map_err(cuda_err("cuModuleLoadData"))
    }

    /// [`RuntimeError::DeviceMemory`] when `estimate` exceeds the free memory.
    fn check_memory(&self, estimate: &host::MemoryEstimate) -> Result<()> {
        let (free, _) = self.ctx.mem_get_info().map_err(cuda_err("cuMemGetInfo"))?;
        estimate.check_fits(free)
    }
}

/// Device copies of everything one execution uses.
/// A GEMM launch's row order (if any) and tiles on the device.
type GemmArrays = (Option<CudaSlice<u32>>, CudaSlice<u32>);

struct Uploaded {
    storages: Vec<CudaSlice<f32>>,
    arrays: HashMap<GraphArray, CudaSlice<u32>>,
    /// Per launch: the GEMM's order (if any) and tiles.
    gemm: Vec<Option<GemmArrays>>,
    /// Whether each buffer holds values.
    written: Vec<bool>,
    bytes: usize,
}

fn upload_u32(stream: &Arc<CudaStream>, v: &[u32], bytes: &mut usize) -> Result<CudaSlice<u32>> {
    *bytes += alloc_len(v.len()) * 4;
    if v.is_empty() {
        stream.alloc_zeros::<u32>(1).map_err(cuda_err("cuMemAlloc"))
    } else {
        stream.clone_htod(v).map_err(cuda_err("cuMemcpyHtoD"))
    }
}

impl Uploaded {
    fn new(
        stream: &Arc<CudaStream>,
        plan: &Plan,
        prep: &Prepared,
        values: Vec<Option<Vec<f32>>>,
    ) -> Result<Self> {
        let mut bytes = 0;
        let mut storages = Vec::with_capacity(prep.storages.len());
        for (spec, v) in prep.storages.iter().zip(values) {
            let slice = match v {
                Some(v) if !v.is_empty() => stream.clone_htod(&v).map_err(cuda_err("cuMemcpyHtoD")),
                _ => stream.alloc_zeros::<f32>(alloc_len(spec.len)).map_err(cuda_err("cuMemAlloc")),
            }?;
            bytes += alloc_len(spec.len) * 4;
            storages.push(slice);
        }
        let mut arrays = HashMap::new();
        for (a, v) in &prep.arrays {
            arrays.insert(*a, upload_u32(stream, v, &mut bytes)?);
        }
        let mut gemm = Vec::with_capacity(prep.gemm.len());
        for t in &prep.gemm {
            gemm.push(match t {
                None => None,
                Some(GemmTables { order, tiles }) => {
                    let order = match order {
                        Some(o) => Some(upload_u32(stream, o, &mut bytes)?),
                        None => None,
                    };
                    Some((order, upload_u32(stream, tiles, &mut bytes)?))
                }
            });
        }
        let written = plan
            .buffers
            .values()
            .map(|b| {
                matches!(
                    b.kind,
                    pigeon_ir::plan::BufferKind::Input(_) | pigeon_ir::plan::BufferKind::Weight(_)
                )
            })
            .collect();
        Ok(Self { storages, arrays, gemm, written, bytes })
    }
}

/// When a written buffer is zeroed before its kernel.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Zero {
    /// Never (the kernel overwrites its rows).
    Never,
    /// When no kernel wrote it before (the kernel accumulates into what it holds).
    IfUnwritten,
    /// Always: the kernel overwrites it, but through atomic adds of partial sums (the weight
    /// gradient's split-K scheme, `wgrad.cuh`).
    Always,
}

/// The buffers a kernel writes, each with when it is zeroed first.
fn writes(kernel: &Kernel) -> Vec<(BufferId, Zero)> {
    let acc = |a: bool| if a { Zero::IfUnwritten } else { Zero::Never };
    match kernel {
        Kernel::Gemm(g) => vec![(g.c, acc(g.store.accumulates()))],
        Kernel::WeightGrad(g) => vec![(g.c, Zero::Always)],
        Kernel::Traversal(t) => t
            .body
            .iter()
            .filter_map(|s| match s.op {
                StmtOp::Store { buf, mode, .. } => Some((buf, acc(mode.accumulates()))),
                _ => None,
            })
            .collect(),
    }
}

/// The grid of `launch`, `None` when it has no block.
fn grid(
    launch: &KernelLaunch,
    prep: &Prepared,
    tables: Option<&GemmTables>,
) -> Result<Option<(u32, u32)>> {
    let too_big = || {
        RuntimeError::Unsupported(format!(
            "kernel `{}` needs more blocks than a grid holds",
            launch.name
        ))
    };
    let (x, y) = match launch.grid {
        Grid::Rows { space, rows_per_block } => {
            if rows_per_block == 0 {
                return Err(RuntimeError::Internal(format!("{}: 0 rows per block", launch.name)));
            }
            (prep.count(space)?.div_ceil(rows_per_block as usize), 1)
        }
        Grid::Gemm { y_blocks, .. } => {
            let t = tables.ok_or_else(|| {
                RuntimeError::Internal(format!("{}: a GEMM grid without tiles", launch.name))
            })?;
            (t.num_tiles(), y_blocks as usize)
        }
    };
    if x == 0 || y == 0 {
        return Ok(None);
    }
    if x > i32::MAX as usize || y > 65535 {
        return Err(too_big());
    }
    Ok(Some((x as u32, y as u32)))
}

/// Timing events of one launch (`None` for a skipped, empty grid).
type Timing = (KernelId, Option<(CudaEvent, CudaEvent)>);

impl CudaBackend {
    /// Launches every kernel in order; returns the timing events.
    fn run_kernels(
        &self,
        plan: &Plan,
        program: &CudaProgram,
        prep: &Prepared,
        dev: &mut Uploaded,
        functions: &[CudaFunction],
    ) -> Result<Vec<Timing>> {
        let mut timings = Vec::with_capacity(program.kernels.len());
        for (i, (launch, func)) in program.kernels.iter().zip(functions).enumerate() {
            let kernel = plan.kernels.get(launch.kernel).ok_or_else(|| {
                RuntimeError::Internal(format!("launch of unknown kernel {}", launch.kernel))
            })?;
            let writes = writes(kernel);
            for &(b, zero) in &writes {
                let len = *prep.len.get(b.index()).unwrap_or(&0);
                let unwritten = !dev.written.get(b.index()).copied().unwrap_or(true);
                let zero = match zero {
                    Zero::Never => false,
                    Zero::IfUnwritten => unwritten,
                    Zero::Always => true,
                };
                if zero && len > 0 {
                    let st = prep.of_buffer[b.index()];
                    let mut view = dev.storages[st].slice_mut(0..len);
                    self.stream.memset_zeros(&mut view).map_err(cuda_err("cuMemsetD8"))?;
                }
            }
            let events = match grid(launch, prep, prep.gemm.get(i).and_then(|t| t.as_ref()))? {
                None => None,
                Some(g) => self.launch(launch, func, g, prep, dev, i)?,
            };
            for (b, _) in writes {
                if let Some(w) = dev.written.get_mut(b.index()) {
                    *w = true;
                }
            }
            timings.push((launch.kernel, events));
        }
        Ok(timings)
    }

    /// Launches one kernel on grid `(x, y)` with its parameters bound from `dev`.
    fn launch(
        &self,
        launch: &KernelLaunch,
        func: &CudaFunction,
        (x, y): (u32, u32),
        prep: &Prepared,
        dev: &Uploaded,
        index: usize,
    ) -> Result<Option<(CudaEvent, CudaEvent)>> {
        let internal = |m: &str| RuntimeError::Internal(format!("{}: {m}", launch.name));
        // Counts first: the builder keeps references to them until the launch.
        let mut counts = Vec::with_capacity(launch.params.len());
        for p in &launch.params {
            counts.push(match p {
                Param::Count(s) => u32::try_from(prep.count(*s)?).map_err(|_| {
                    RuntimeError::Unsupported(format!(
                        "more than 2^32 - 1 rows of {s:?} on the GPU"
                    ))
                })?,
                _ => 0,
            });
        }
        let tables = dev.gemm.get(index).and_then(|t| t.as_ref());
        let mut args = self.stream.launch_builder(func);
        for (p, count) in launch.params.iter().zip(&counts) {
            match p {
                Param::Buffer(b) => {
                    let st =
                        *prep.of_buffer.get(b.index()).ok_or_else(|| internal("unknown buffer"))?;
                    args.arg(&dev.storages[st]);
                }
                Param::Array(a) => {
                    args.arg(
                        dev.arrays.get(a).ok_or_else(|| internal("graph array not uploaded"))?,
                    );
                }
                Param::Count(_) => {
                    args.arg(count);
                }
                Param::GemmOrder => {
                    let order = tables.and_then(|t| t.0.as_ref());
                    args.arg(order.ok_or_else(|| internal("a row order without one"))?);
                }
                Param::GemmTiles => {
                    args.arg(&tables.ok_or_else(|| internal("tiles of a non-GEMM"))?.1);
                }
            }
        }
        args.record_kernel_launch(sys::CUevent_flags::CU_EVENT_DEFAULT);
        let cfg = LaunchConfig {
            grid_dim: (x, y, 1),
            block_dim: (launch.block, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the arguments were pushed from `launch.params`, the same list, in the same
        // order, from which `pigeon_codegen` wrote the kernel's C signature (`params.rs`):
        // buffers are device `float` allocations holding at least the buffer's rows (`host.rs`
        // sizes slots for their largest buffer), graph arrays, orders and tiles are `u32`
        // allocations of the lengths `spec.rs` promises, counts are `u32` values that live until
        // after the launch. Grid and block come from the same launch description; shared memory
        // is static. Every allocation outlives the stream's work (synchronised before `dev` is
        // dropped).
        let events = unsafe { args.launch(cfg) }
            .map_err(cuda_err(&format!("launching `{}` (cuLaunchKernel)", launch.name)))?;
        Ok(events)
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn execute(
        &self,
        plan: &Plan,
        graph: &HeteroGraph,
        inputs: &[(String, Tensor)],
        weights: &WeightStore,
    ) -> Result<Execution> {
        let program = pigeon_codegen::generate(plan, &self.options)?;
        self.execute_program(plan, &program, graph, inputs, weights)
    }
}

impl CudaBackend {
    /// Runs `program`, generated from `plan` (by `pigeon_codegen::generate` or ahead of time),
    /// as [`Backend::execute`] does: the kernels must follow `pigeon_codegen::spec`.
    pub fn execute_program(
        &self,
        plan: &Plan,
        program: &CudaProgram,
        graph: &HeteroGraph,
        inputs: &[(String, Tensor)],
        weights: &WeightStore,
    ) -> Result<Execution> {
        let start = Instant::now();
        let prep = host::prepare(plan, graph, program)?;
        let layouts = start.elapsed();
        let bind_start = Instant::now();
        let values = values::storage_values(plan, &prep, inputs, weights)?;
        let mut transfers = bind_start.elapsed();
        self.check_memory(&prep.estimate())?;
        let functions = self.functions(program)?;
        let upload_start = Instant::now();
        let mut dev = Uploaded::new(&self.stream, plan, &prep, values)?;
        transfers += upload_start.elapsed();
        let timings = self.run_kernels(plan, program, &prep, &mut dev, &functions)?;
        self.stream.synchronize().map_err(|e| {
            RuntimeError::Cuda(format!("running the kernels of `{}` failed: {e:?}", plan.name))
        })?;
        let mut per_kernel = Vec::with_capacity(timings.len());
        for (id, events) in timings {
            let d = match events {
                Some((a, b)) => {
                    let ms = a.elapsed_ms(&b).map_err(cuda_err("cuEventElapsedTime"))?;
                    Duration::from_secs_f64(f64::from(ms.max(0.0)) / 1e3)
                }
                None => Duration::ZERO,
            };
            per_kernel.push((id, d));
        }
        let download_start = Instant::now();
        let mut outputs = Vec::with_capacity(plan.outputs.len());
        for (name, b) in &plan.outputs {
            outputs.push((name.clone(), self.download(plan, &prep, &dev, *b)?));
        }
        transfers += download_start.elapsed();
        let profile = Profile { per_kernel, layouts, peak_bytes: dev.bytes, transfers };
        Ok(Execution { outputs, profile })
    }
}

impl CudaBackend {
    /// Buffer `b` as an f64 tensor.
    fn download(
        &self,
        plan: &Plan,
        prep: &Prepared,
        dev: &Uploaded,
        b: BufferId,
    ) -> Result<Tensor> {
        let buf = plan
            .buffers
            .get(b)
            .ok_or_else(|| RuntimeError::Internal(format!("unknown output buffer {b}")))?;
        if !dev.written.get(b.index()).copied().unwrap_or(false) {
            return Err(RuntimeError::Internal(format!("output buffer {b} is never written")));
        }
        let rows = prep.count(buf.rows)?;
        let len = prep.len[b.index()];
        let data = if len == 0 {
            Vec::new()
        } else {
            let st = prep.of_buffer[b.index()];
            let view = dev.storages[st].slice(0..len);
            self.stream.clone_dtoh(&view).map_err(cuda_err("cuMemcpyDtoH"))?
        };
        Tensor::from_f32(rows, buf.shape.clone(), &data)
    }
}
