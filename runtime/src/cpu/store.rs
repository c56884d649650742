//! Buffer storage of one execution: one allocation per input, weight, output and un-slotted
//! temp, one per temp slot (sized for its largest buffer), taken from the back end's pool
//! (not cleared: every row is written before it is read); inputs and weights converted to the
//! element type and checked against the plan's declarations. Resident inputs
//! (`Backend::upload`) are checked the same way and read in place: their storage borrows the
//! uploaded values, which no kernel writes (`access.rs` rejects writes to input buffers, and an
//! input buffer never shares its storage) and which never go back to the pool.

use super::access::KernelAccess;
use super::pool::{Pool, Pooled};
use super::{Env, Raw, Views};
use crate::error::{Result, RuntimeError};
use crate::tensor::Tensor;
use crate::weights::WeightStore;
use pigeon_ir::plan::BufferKind;
use pigeon_ir::{EntityId, Shape};
use rayon::prelude::*;
use std::collections::BTreeMap;

/// The values of one storage: owned (from the pool, given back after the execution), or
/// borrowed from resident inputs (read only).
enum Slab<'r, T> {
    Owned(Vec<T>),
    Borrowed(&'r [T]),
}

impl<T> Slab<'_, T> {
    fn as_slice(&self) -> &[T] {
        match self {
            Slab::Owned(v) => v,
            Slab::Borrowed(v) => v,
        }
    }
}

/// The storages and which buffer lives in which.
pub(crate) struct Storage<'r, T> {
    data: Vec<Slab<'r, T>>,
    /// Storage index of each buffer.
    pub of_buffer: Vec<usize>,
    /// Values (rows x width) of each buffer.
    pub len: Vec<usize>,
    /// Values per row of each buffer.
    pub width: Vec<usize>,
    /// Whether each buffer holds values (inputs and weights from the start, others once a
    /// kernel wrote them).
    pub written: Vec<bool>,
}

/// Values per parallel conversion task.
const CONVERT_CHUNK: usize = 1 << 16;

/// `t`'s values in `T`, in a buffer from `pool`.
fn convert<T: Pooled>(t: &Tensor, pool: &Pool) -> Vec<T> {
    let mut out = pool.take(t.data.len());
    out.par_chunks_mut(CONVERT_CHUNK).zip(t.data.par_chunks(CONVERT_CHUNK)).for_each(|(o, x)| {
        for (o, &x) in o.iter_mut().zip(x) {
            *o = T::from_f64(x);
        }
    });
    out
}

/// `t`'s values in `T`, in a new buffer (for values that outlive executions: resident ones).
pub(crate) fn convert_new<T: super::float::Float>(t: &Tensor) -> Vec<T> {
    let mut out = Vec::with_capacity(t.data.len());
    t.data
        .par_iter()
        .with_min_len(CONVERT_CHUNK)
        .map(|&x| T::from_f64(x))
        .collect_into_vec(&mut out);
    out
}

impl<'r, T: Pooled> Storage<'r, T> {
    /// Allocates every buffer of the plan (from `pool`) and fills inputs and weights: an input
    /// from `kept` (moved in), else from `resident` (borrowed), else from `inputs` (converted).
    pub fn allocate(
        env: &Env,
        inputs: &[(String, Tensor)],
        resident: &'r super::KeptRows<T>,
        weights: &WeightStore,
        pool: &Pool,
        kept: &mut super::KeptRows<T>,
    ) -> Result<Self> {
        let plan = env.plan;
        let n = plan.buffers.len();
        let mut s = Storage {
            data: Vec::new(),
            of_buffer: vec![0; n],
            len: vec![0; n],
            width: vec![0; n],
            written: vec![false; n],
        };
        let mut slots: BTreeMap<u32, usize> = BTreeMap::new();
        for (id, buf) in plan.buffers.iter() {
            let rows = env.count(buf.rows)?;
            let width = buf.shape.numel();
            let len = rows * width;
            s.len[id.index()] = len;
            s.width[id.index()] = width;
            let values = match &buf.kind {
                BufferKind::Input(name) => match kept.iter().position(|k| k.0 == *name) {
                    Some(i) => {
                        let (_, kept_rows, shape, values) = kept.swap_remove(i);
                        if kept_rows != rows || shape != buf.shape || values.len() != len {
                            pool.give([values]);
                            return Err(RuntimeError::Binding {
                                name: name.clone(),
                                message: format!(
                                    "needs {rows} rows of shape {} on this graph, but {kept_rows} \
                                     rows of shape {shape} were kept",
                                    buf.shape
                                ),
                            });
                        }
                        Some(Slab::Owned(values))
                    }
                    None => match resident.iter().find(|r| r.0 == *name) {
                        Some((_, got_rows, got_shape, values)) => {
                            let got = (*got_rows, got_shape, values.len());
                            crate::values::check_input(name, rows, &buf.shape, got)?;
                            Some(Slab::Borrowed(values.as_slice()))
                        }
                        None => Some(Slab::Owned(input(
                            name, buf.rows, rows, &buf.shape, inputs, pool,
                        )?)),
                    },
                },
                BufferKind::Weight(w) => {
                    Some(Slab::Owned(weight(env, *w, rows, &buf.shape, weights, pool)?))
                }
                BufferKind::Temp | BufferKind::Output(_) => None,
            };
            let storage = match (values, &buf.kind, buf.slot) {
                (Some(v), ..) => {
                    s.written[id.index()] = true;
                    s.data.push(v);
                    s.data.len() - 1
                }
                (None, BufferKind::Temp, Some(slot)) => {
                    let i = *slots.entry(slot).or_insert_with(|| {
                        s.data.push(Slab::Owned(Vec::new()));
                        s.data.len() - 1
                    });
                    if s.data[i].as_slice().len() < len {
                        let old = std::mem::replace(&mut s.data[i], Slab::Owned(pool.take(len)));
                        if let Slab::Owned(v) = old {
                            pool.give([v]);
                        }
                    }
                    i
                }
                (None, ..) => {
                    s.data.push(Slab::Owned(pool.take(len)));
                    s.data.len() - 1
                }
            };
            s.of_buffer[id.index()] = storage;
        }
        Ok(s)
    }

    /// Gives the owned storages back to `pool` for the next execution (borrowed ones belong
    /// to their resident values).
    pub fn release(self, pool: &Pool) {
        pool.give(self.data.into_iter().filter_map(|d| match d {
            Slab::Owned(v) => Some(v),
            Slab::Borrowed(_) => None,
        }));
    }

    /// Zeroes buffers that the kernel accumulates into before anything was written to them.
    pub fn prepare_writes(&mut self, access: &KernelAccess) -> Result<()> {
        for &(b, accumulates) in &access.writes {
            if accumulates && !self.written[b.index()] {
                let len = self.len[b.index()];
                let st = self.of_buffer[b.index()];
                let Slab::Owned(v) = &mut self.data[st] else {
                    return Err(RuntimeError::Internal(format!("{b} is written but resident")));
                };
                v[..len].iter_mut().for_each(|x| *x = T::ZERO);
            }
        }
        Ok(())
    }

    /// Records the kernel's writes.
    pub fn mark_written(&mut self, access: &KernelAccess) {
        for &(b, _) in &access.writes {
            self.written[b.index()] = true;
        }
    }

    /// The views of every buffer for one kernel. A borrowed (resident) storage's view points
    /// at memory it must never write: it holds an input buffer only, and `access::check`
    /// rejects every kernel that writes an input buffer before it runs.
    pub fn views(&mut self) -> Views<T> {
        let ptrs: Vec<*mut T> = self
            .data
            .iter_mut()
            .map(|v| match v {
                Slab::Owned(v) => v.as_mut_ptr(),
                Slab::Borrowed(v) => v.as_ptr().cast_mut(),
            })
            .collect();
        let of_buffer = (0..self.of_buffer.len())
            .map(|b| {
                let len = self.len[b];
                Raw { ptr: ptrs[self.of_buffer[b]], len, width: self.width[b] }
            })
            .collect();
        Views { of_buffer }
    }

    /// Total bytes allocated (all storages live for the whole execution).
    pub fn bytes(&self) -> usize {
        self.data.iter().map(|v| std::mem::size_of_val(v.as_slice())).sum()
    }

    /// Buffer `b` as an f64 tensor.
    pub fn output(&self, env: &Env, b: pigeon_ir::plan::BufferId) -> Result<Tensor> {
        let buf = env.buffer(b)?;
        if !self.written[b.index()] {
            return Err(RuntimeError::Internal(format!("output buffer {b} is never written")));
        }
        let rows = env.count(buf.rows)?;
        let len = self.len[b.index()];
        let src = &self.data[self.of_buffer[b.index()]].as_slice()[..len];
        // Collected rather than converted into a zeroed vector: zeroing megabytes of f64s
        // that are overwritten at once cost as much as the conversion.
        let mut data = Vec::with_capacity(len);
        src.par_iter().with_min_len(CONVERT_CHUNK).map(|x| x.to_f64()).collect_into_vec(&mut data);
        Tensor::from_vec(rows, buf.shape.clone(), data)
    }

    /// The values of output buffer `b`, moved out of the storage (for `Backend::execute_kept`;
    /// outputs have storages of their own), or copied when they are borrowed.
    pub fn take_output(&mut self, b: pigeon_ir::plan::BufferId, pool: &Pool) -> Result<Vec<T>> {
        let (st, len) = (self.of_buffer[b.index()], self.len[b.index()]);
        if !self.written[b.index()] || self.data[st].as_slice().len() < len {
            return Err(RuntimeError::Internal(format!("output buffer {b} cannot be kept")));
        }
        match &mut self.data[st] {
            Slab::Owned(v) => {
                let mut values = std::mem::take(v);
                values.truncate(len);
                Ok(values)
            }
            Slab::Borrowed(v) => {
                let mut values = pool.take(len);
                values.copy_from_slice(&v[..len]);
                Ok(values)
            }
        }
    }

    /// Storage index of buffer `b`.
    pub fn storage_of(&self, b: pigeon_ir::plan::BufferId) -> usize {
        self.of_buffer[b.index()]
    }
}

/// The bound value of input `name`, checked and converted.
fn input<T: Pooled>(
    name: &str,
    space: pigeon_ir::plan::RowSpace,
    rows: usize,
    shape: &Shape,
    inputs: &[(String, Tensor)],
    pool: &Pool,
) -> Result<Vec<T>> {
    Ok(convert(crate::values::bound_input(name, space, rows, shape, inputs)?, pool))
}

/// The values of weight `w`, checked against the plan's declaration and the graph.
fn weight<T: Pooled>(
    env: &Env,
    w: pigeon_ir::WeightId,
    rows: usize,
    shape: &Shape,
    store: &WeightStore,
    pool: &Pool,
) -> Result<Vec<T>> {
    let decl = env
        .plan
        .weights
        .get(w)
        .ok_or_else(|| RuntimeError::Internal(format!("undeclared weight {w}")))?;
    Ok(convert(crate::values::weight_values(&decl.name, store.get(w), rows, shape)?, pool))
}
