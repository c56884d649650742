//! The CPU back end: executes a kernel plan (`pigeon_ir::plan`) with rayon across rows, edges
//! and nodes, and matrixmultiply's packed GEMM for the GEMM template.
//!
//! Execution: validate the graph, build the layouts the plan needs (those it lists and those its
//! kernels imply; kept for the next execution on a graph with the same edges), allocate one
//! storage per buffer (temps sharing a `slot` share one storage, sized for the largest of
//! them), convert inputs and weights to the element type (inputs uploaded before with
//! `Backend::upload` are read in place), then run the kernels in order (`gemm.rs`,
//! `traversal.rs`) and widen the outputs to f64.
//!
//! Memory safety of the parallel kernels rests on rules checked per kernel before it runs
//! (`access.rs`): a storage written by a kernel is read by it only through the row being
//! written (`RowIndex::This`), never by a GEMM operand, and not at all when it is accumulated
//! into with atomic adds; two buffers written by one kernel never share a storage.

mod access;
mod body;
pub mod float;
mod gemm;
mod index;
mod pool;
mod rowops;
mod sgemm;
mod store;
mod traversal;
mod wgrad;

use crate::backend::{Backend, Execution, Inputs, Kept, Profile, Resident};
use crate::error::{Result, RuntimeError};
use crate::graph::HeteroGraph;
use crate::layout::{CompactTable, InCsr, Layouts};
use crate::tensor::Tensor;
use crate::weights::WeightStore;
use float::Float;
use pigeon_ir::plan::{Buffer, BufferId, Kernel, Plan, RowSpace};
use pigeon_ir::{Endpoint, EntityId};
use std::time::Instant;
use store::Storage;

/// The element type the CPU back end computes in.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    /// 32-bit floats (what compiled kernels use).
    #[default]
    F32,
    /// 64-bit floats (for comparisons with the reference interpreter).
    F64,
}

/// The CPU plan executor. Clones share its memory pool (buffers of one execution are reused by
/// the next, `pool.rs`), its layouts and its worker threads.
#[derive(Clone, Debug, Default)]
pub struct CpuBackend {
    /// Element type.
    pub precision: Precision,
    /// Number of worker threads; `None` uses rayon's global pool (one per core).
    pub threads: Option<usize>,
    pool: std::sync::Arc<pool::Pool>,
    layouts: std::sync::Arc<LayoutCache>,
    workers: std::sync::Arc<Workers>,
}

/// The worker threads of a back end with a thread count of its own, started on its first
/// execution and kept: starting two threads for every plan execution cost about 0.2 ms of
/// a training step (two executions) and left their first kernel on cold threads.
#[derive(Debug, Default)]
struct Workers(std::sync::Mutex<Option<(usize, std::sync::Arc<rayon::ThreadPool>)>>);

impl Workers {
    /// A pool of `n` threads: the kept one when it has `n` threads, else a new one.
    fn get(&self, n: usize) -> Result<std::sync::Arc<rayon::ThreadPool>> {
        let mut kept = self.0.lock().map_err(|_| RuntimeError::Internal("worker pool".into()))?;
        if let Some((threads, pool)) = kept.as_ref() {
            if *threads == n {
                return Ok(pool.clone());
            }
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| RuntimeError::Internal(format!("cannot start {n} threads: {e}")))?;
        let pool = std::sync::Arc::new(pool);
        *kept = Some((n, pool.clone()));
        Ok(pool)
    }
}

/// The layouts last built, with the graph arrays they were built from: a training step runs
/// two plans on one graph every step, and rebuilding the in-CSR, the compact tables and the
/// relation order each time costs about a millisecond on ACM. A hit compares the arrays.
#[derive(Debug, Default)]
struct LayoutCache(std::sync::Mutex<Option<CachedLayouts>>);

#[derive(Debug)]
struct CachedLayouts {
    type_offsets: Vec<usize>,
    relations: usize,
    edges: [Vec<u32>; 3],
    built: Vec<pigeon_ir::plan::Layout>,
    layouts: std::sync::Arc<Layouts>,
}

impl LayoutCache {
    /// Layouts of `graph` holding at least `wanted`: the cached ones when they were built
    /// from the same node types and edges, else new ones (also holding what the cache held
    /// for this graph, so that plans needing different layouts do not evict each other).
    fn get(
        &self,
        graph: &HeteroGraph,
        wanted: &[pigeon_ir::plan::Layout],
    ) -> Result<std::sync::Arc<Layouts>> {
        let mut cache = self.0.lock().map_err(|_| RuntimeError::Internal("layout cache".into()))?;
        let same = cache.as_ref().filter(|c| {
            c.relations == graph.num_relations()
                && c.type_offsets == graph.type_offsets
                && c.edges[0] == graph.src
                && c.edges[1] == graph.dst
                && c.edges[2] == graph.rel
        });
        let mut build: Vec<pigeon_ir::plan::Layout> = wanted.to_vec();
        if let Some(c) = same {
            if wanted.iter().all(|l| c.built.contains(l)) {
                return Ok(c.layouts.clone());
            }
            build.extend(c.built.iter().filter(|l| !wanted.contains(l)));
        }
        let layouts = std::sync::Arc::new(Layouts::build(graph, &build)?);
        *cache = Some(CachedLayouts {
            type_offsets: graph.type_offsets.clone(),
            relations: graph.num_relations(),
            edges: [graph.src.clone(), graph.dst.clone(), graph.rel.clone()],
            built: build,
            layouts: layouts.clone(),
        });
        Ok(layouts)
    }
}

impl CpuBackend {
    /// A back end computing in `precision` on rayon's global pool.
    pub fn new(precision: Precision) -> Self {
        Self { precision, ..Self::default() }
    }

    /// A back end computing in `precision` on `threads` worker threads (`None`: rayon's
    /// global pool).
    pub fn with_threads(precision: Precision, threads: Option<usize>) -> Self {
        Self { precision, threads, ..Self::default() }
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn execute(
        &self,
        plan: &Plan,
        graph: &HeteroGraph,
        inputs: &[(String, Tensor)],
        weights: &WeightStore,
    ) -> Result<Execution> {
        Ok(self.execute_kept(plan, graph, Inputs::host(inputs), weights, &|_| false)?.0)
    }

    fn execute_kept(
        &self,
        plan: &Plan,
        graph: &HeteroGraph,
        inputs: Inputs<'_>,
        weights: &WeightStore,
        keep: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<(Execution, Option<Kept>)> {
        inputs.check_disjoint()?;
        let run = || match self.precision {
            Precision::F32 => execute::<f32>(plan, graph, inputs, weights, self, keep),
            Precision::F64 => execute::<f64>(plan, graph, inputs, weights, self, keep),
        };
        self.on_workers(run)?
    }

    /// Converts `inputs` to the back end's precision and keeps them in host memory owned by
    /// the returned [`Resident`]; executions borrow them (no conversion, no copy).
    fn upload(&self, inputs: &[(String, Tensor)]) -> Result<Option<Resident>> {
        crate::values::check_upload(inputs)?;
        let names = inputs.iter().map(|(n, _)| n.clone()).collect();
        type Held = Box<dyn std::any::Any + Send + Sync>;
        let values = self.on_workers(|| -> Held {
            match self.precision {
                Precision::F32 => Box::new(resident_rows::<f32>(inputs)),
                Precision::F64 => Box::new(resident_rows::<f64>(inputs)),
            }
        })?;
        Ok(Some(Resident::new(names, values)))
    }
}

impl CpuBackend {
    /// Runs `f` on the back end's worker threads (rayon's global pool when it has no thread
    /// count of its own).
    fn on_workers<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R> {
        Ok(match self.threads {
            None => f(),
            Some(n) => self.workers.get(n)?.install(f),
        })
    }
}

/// Values kept on the CPU back end: name, rows, per-row shape and values in `T`. Also the
/// form of resident values.
type KeptRows<T> = Vec<(String, usize, pigeon_ir::Shape, Vec<T>)>;

/// `inputs` converted to `T`, as resident values.
fn resident_rows<T: Float>(inputs: &[(String, Tensor)]) -> KeptRows<T> {
    inputs
        .iter()
        .map(|(name, t)| (name.clone(), t.rows, t.shape.clone(), store::convert_new(t)))
        .collect()
}

/// What kernels see of the graph and the plan.
pub(crate) struct Env<'a> {
    pub graph: &'a HeteroGraph,
    pub layouts: &'a Layouts,
    pub plan: &'a Plan,
    /// The back end's buffer pool (for kernel scratch of buffer size).
    pub pool: &'a pool::Pool,
}

impl<'a> Env<'a> {
    /// The compact table of `ep` (built before the kernels when the plan needs it).
    pub fn compact(&self, ep: Endpoint) -> Result<&'a CompactTable> {
        self.layouts
            .compact(ep)
            .ok_or_else(|| RuntimeError::Internal(format!("compact.{ep} table not built")))
    }
    /// The incoming-edge CSR.
    pub fn csr(&self) -> Result<&'a InCsr> {
        self.layouts.in_csr().ok_or_else(|| RuntimeError::Internal("in-CSR not built".into()))
    }
    /// Number of rows of `space` on this graph.
    pub fn count(&self, space: RowSpace) -> Result<usize> {
        Ok(match space {
            RowSpace::Nodes => self.graph.num_nodes(),
            RowSpace::Edges => self.graph.num_edges(),
            RowSpace::Compact(ep) => self.compact(ep)?.len(),
            RowSpace::Relations => self.graph.num_relations(),
            RowSpace::NodeTypes => self.graph.num_node_types(),
            RowSpace::One => 1,
        })
    }
    /// Buffer `id` of the plan.
    pub fn buffer(&self, id: BufferId) -> Result<&'a Buffer> {
        self.plan
            .buffers
            .get(id)
            .ok_or_else(|| RuntimeError::Internal(format!("unknown buffer {id}")))
    }
}

/// Executes `plan` in element type `T`, reading inputs from `inputs.kept` first, then from
/// `inputs.resident`, and keeping the outputs `keep` accepts (`Backend::execute_kept`).
fn execute<T: pool::Pooled>(
    plan: &Plan,
    graph: &HeteroGraph,
    inputs: Inputs<'_>,
    weights: &WeightStore,
    backend: &CpuBackend,
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> Result<(Execution, Option<Kept>)> {
    let start = Instant::now();
    let pool = &*backend.pool;
    let mut kept_in: KeptRows<T> = match inputs.kept {
        None => Vec::new(),
        Some(k) => *k.0.downcast::<KeptRows<T>>().map_err(|_| {
            RuntimeError::Internal("values kept by an execution in another precision".into())
        })?,
    };
    let no_resident = KeptRows::<T>::new();
    let resident = match inputs.resident {
        None => &no_resident,
        Some(r) => r.values.downcast_ref::<KeptRows<T>>().ok_or_else(|| {
            RuntimeError::Internal("resident values uploaded in another precision".into())
        })?,
    };
    let layouts = backend.layouts.get(graph, &access::needed_layouts(plan))?;
    let layouts_time = start.elapsed();
    let env = Env { graph, layouts: &layouts, plan, pool };
    let bind_start = Instant::now();
    let allocated =
        Storage::<T>::allocate(&env, inputs.host, resident, weights, pool, &mut kept_in);
    pool.give(kept_in.into_iter().map(|k| k.3));
    let mut storage = allocated?;
    let mut transfers = bind_start.elapsed();
    let mut per_kernel = Vec::with_capacity(plan.kernels.len());
    for (id, kernel) in plan.kernels.iter() {
        let t0 = Instant::now();
        let in_kernel = |e: RuntimeError| match e {
            RuntimeError::Internal(m) => RuntimeError::Internal(format!("{id}: {m}")),
            e => e,
        };
        let plan_access = access::check(&env, kernel, &storage).map_err(in_kernel)?;
        storage.prepare_writes(&plan_access).map_err(in_kernel)?;
        let views = storage.views();
        match kernel {
            Kernel::Gemm(g) => gemm::run(&env, g, &views),
            Kernel::WeightGrad(g) => wgrad::run(&env, g, &views),
            Kernel::Traversal(t) => traversal::run(&env, t, &views),
        }
        .map_err(in_kernel)?;
        storage.mark_written(&plan_access);
        per_kernel.push((id, t0.elapsed()));
    }
    let peak_bytes = storage.bytes();
    let outputs_start = Instant::now();
    let mut outputs = Vec::with_capacity(plan.outputs.len());
    let mut kept_out: KeptRows<T> = Vec::new();
    for (name, b) in &plan.outputs {
        if keep(name) {
            let buf = env.buffer(*b)?;
            let values = storage.take_output(*b, pool)?;
            kept_out.push((name.clone(), env.count(buf.rows)?, buf.shape.clone(), values));
        } else {
            outputs.push((name.clone(), storage.output(&env, *b)?));
        }
    }
    transfers += outputs_start.elapsed();
    let profile = Profile { per_kernel, layouts: layouts_time, peak_bytes, transfers };
    storage.release(pool);
    let kept = (!kept_out.is_empty()).then(|| Kept(Box::new(kept_out)));
    Ok((Execution { outputs, profile }, kept))
}

/// Hints the CPU to start loading the `width` values at `ptr + start`, of `len` values at
/// `ptr` (nothing if they are out of bounds or the target has no prefetch instruction).
#[inline(always)]
pub(crate) fn prefetch_values<T>(ptr: *const T, start: usize, width: usize, len: usize) {
    if start + width > len {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let p = ptr.wrapping_add(start).cast::<i8>();
        for line in (0..width * std::mem::size_of::<T>()).step_by(64) {
            // SAFETY: prefetching is a hint that never faults; the address is in bounds.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    p.wrapping_add(line),
                )
            }
        }
    }
}

/// A buffer's storage as seen by a running kernel: a raw pointer shared by its tasks, which
/// touch disjoint rows (or add atomically) as the access rules guarantee.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Raw<T> {
    ptr: *mut T,
    len: usize,
    /// Values per row of the buffer.
    pub width: usize,
}

// SAFETY: a `Raw` is only used by the tasks of one kernel, which access disjoint rows or use
// atomic adds (see the module doc); the storage outlives the kernel.
unsafe impl<T: Send> Send for Raw<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Raw<T> {}

impl<T: Float> Raw<T> {
    /// An empty view (for buffers that no kernel may touch).
    fn empty() -> Self {
        Self { ptr: std::ptr::NonNull::dangling().as_ptr(), len: 0, width: 0 }
    }
    /// Row `i`.
    ///
    /// # Safety
    /// No other task may write row `i` while the slice lives.
    #[inline]
    pub unsafe fn row(&self, i: usize) -> &[T] {
        let start = i * self.width;
        assert!(start + self.width <= self.len, "row {i} beyond a buffer of {} values", self.len);
        // SAFETY: in bounds (checked); no concurrent writer by the caller's contract.
        unsafe { std::slice::from_raw_parts(self.ptr.add(start), self.width) }
    }
    /// Mutable row `i`.
    ///
    /// # Safety
    /// No other task may read or write row `i` while the slice lives.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn row_mut(&self, i: usize) -> &mut [T] {
        let start = i * self.width;
        assert!(start + self.width <= self.len, "row {i} beyond a buffer of {} values", self.len);
        // SAFETY: in bounds (checked); exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), self.width) }
    }
    /// Mutable rows `i..i + n`, consecutive.
    ///
    /// # Safety
    /// No other task may read or write these rows while the slice lives.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn rows_mut(&self, i: usize, n: usize) -> &mut [T] {
        let (start, len) = (i * self.width, n * self.width);
        assert!(start + len <= self.len, "rows {i}.. beyond a buffer of {} values", self.len);
        // SAFETY: in bounds (checked); exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
    /// Adds `x` into row `i` with atomic adds.
    ///
    /// # Safety
    /// Row `i` may be accessed concurrently only through `add_atomic`.
    #[inline]
    pub unsafe fn add_atomic(&self, i: usize, x: &[T]) {
        let start = i * self.width;
        assert!(start + self.width <= self.len, "row {i} beyond a buffer of {} values", self.len);
        for (j, &v) in x.iter().enumerate().take(self.width) {
            // SAFETY: in bounds; atomic by the caller's contract.
            unsafe { T::atomic_add(self.ptr.add(start + j), v) }
        }
    }
    /// Hints the CPU to start loading row `i` into the cache (nothing if `i` is out of bounds
    /// or the target has no prefetch instruction).
    #[inline(always)]
    pub fn prefetch_row(&self, i: usize) {
        prefetch_values(self.ptr, i * self.width, self.width, self.len)
    }
    /// The first value (for GEMM operands given as base pointers).
    pub fn ptr(&self) -> *mut T {
        self.ptr
    }
    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }
}

/// The buffer views of one kernel, indexed by buffer.
pub(crate) struct Views<T> {
    of_buffer: Vec<Raw<T>>,
}

impl<T: Float> Views<T> {
    /// The view of buffer `b` (an empty view for unknown ids, which `access::check` rejects).
    pub fn get(&self, b: BufferId) -> Raw<T> {
        self.of_buffer.get(b.index()).copied().unwrap_or_else(Raw::empty)
    }
}
