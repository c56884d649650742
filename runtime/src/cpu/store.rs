//! Buffer storage of one execution: one allocation per input, weight, output and un-slotted
//! temp, one per temp slot (sized for its largest buffer), taken from the back end's pool
//! (not cleared: every row is written before it is read); inputs and weights converted to the element type and checked against the plan's
//! declarations.

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

/// The storages and which buffer lives in which.
pub(crate) struct Storage<T> {
    data: Vec<Vec<T>>,
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

impl<T: Pooled> Storage<T> {
    /// Allocates every buffer of the plan (from `pool`) and fills inputs and weights.
    pub fn allocate(
        env: &Env,
        inputs: &[(String, Tensor)],
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
                        Some(values)
                    }
                    None => Some(input(name, buf.rows, rows, &buf.shape, inputs, pool)?),
                },
                BufferKind::Weight(w) => Some(weight(env, *w, rows, &buf.shape, weights, pool)?),
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
                        s.data.push(Vec::new());
                        s.data.len() - 1
                    });
                    if s.data[i].len() < len {
                        s.data[i] = pool.take(len);
                    }
                    i
                }
                (None, ..) => {
                    s.data.push(pool.take(len));
                    s.data.len() - 1
                }
            };
            s.of_buffer[id.index()] = storage;
        }
        Ok(s)
    }

    /// Gives the storages back to `pool` for the next execution.
    pub fn release(self, pool: &Pool) {
        pool.give(self.data);
    }

    /// Zeroes buffers that the kernel accumulates into before anything was written to them.
    pub fn prepare_writes(&mut self, access: &KernelAccess) {
        for &(b, accumulates) in &access.writes {
            if accumulates && !self.written[b.index()] {
                let len = self.len[b.index()];
                let st = self.of_buffer[b.index()];
                self.data[st][..len].iter_mut().for_each(|x| *x = T::ZERO);
            }
        }
    }

    /// Records the kernel's writes.
    pub fn mark_written(&mut self, access: &KernelAccess) {
        for &(b, _) in &access.writes {
            self.written[b.index()] = true;
        }
    }

    /// The views of every buffer for one kernel.
    pub fn views(&mut self) -> Views<T> {
        let ptrs: Vec<*mut T> = self.data.iter_mut().map(|v| v.as_mut_ptr()).collect();
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
        self.data.iter().map(|v| v.len() * std::mem::size_of::<T>()).sum()
    }

    /// Buffer `b` as an f64 tensor.
    pub fn output(&self, env: &Env, b: pigeon_ir::plan::BufferId) -> Result<Tensor> {
        let buf = env.buffer(b)?;
        if !self.written[b.index()] {
            return Err(RuntimeError::Internal(format!("output buffer {b} is never written")));
        }
        let rows = env.count(buf.rows)?;
        let len = self.len[b.index()];
        let src = &self.data[self.of_buffer[b.index()]][..len];
        // Collected rather than converted into a zeroed vector: zeroing megabytes of f64s
        // that are overwritten at once cost as much as the conversion.
        let mut data = Vec::with_capacity(len);
        src.par_iter().with_min_len(CONVERT_CHUNK).map(|x| x.to_f64()).collect_into_vec(&mut data);
        Tensor::from_vec(rows, buf.shape.clone(), data)
    }

    /// The values of output buffer `b`, moved out of the storage (for `Backend::execute_kept`;
    /// outputs have storages of their own).
    pub fn take_output(&mut self, b: pigeon_ir::plan::BufferId) -> Result<Vec<T>> {
        let (st, len) = (self.of_buffer[b.index()], self.len[b.index()]);
        if !self.written[b.index()] || self.data[st].len() < len {
            return Err(RuntimeError::Internal(format!("output buffer {b} cannot be kept")));
        }
        let mut values = std::mem::take(&mut self.data[st]);
        values.truncate(len);
        Ok(values)
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
