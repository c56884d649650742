//! The GEMM template's weight-gradient form on the CPU: `C[s] = sum_{i in segment s} A[i]^T
//! B[i]` (`pigeon_ir::plan::WeightGrad`).
//!
//! The iteration rows are grouped by the slice of C they select (`crate::segments`, as for the
//! forward GEMM); each segment is cut into blocks of at most [`BLOCK`] rows. A block gathers
//! its A and B rows into packed buffers (or reads them in place when they are in order) and
//! multiplies `A^T B` with matrixmultiply (A read transposed through its strides) into a
//! partial slice of its own; blocks run in parallel with rayon, and each segment's partials
//! are then summed in block order, so the result does not depend on the thread count.
//! Without an A operand (`slice_sum`), A is a column of ones.

use super::float::Float;
use super::index::{resolve, RowMap};
use super::{Env, Raw, Views};
use crate::error::{Result, RuntimeError};
use crate::segments::{classify_rows, segments};
use pigeon_codegen::Segmentation;
use pigeon_ir::plan::{RowIndex, WeightGrad};
use pigeon_ir::shape::LinearForm;
use rayon::prelude::*;

/// The most rows one task multiplies.
const BLOCK: usize = 2048;

fn internal(m: String) -> RuntimeError {
    RuntimeError::Internal(m)
}

/// An operand: its storage and how iteration rows find their row.
struct Operand<'a, T> {
    view: Raw<T>,
    map: RowMap<'a>,
}

impl<T: Float> Operand<'_, T> {
    /// A pointer to `m` consecutive rows for the rows `row_id(0..m)`: in place when they are
    /// consecutive rows of the buffer, else packed into `pack`.
    fn rows(
        &self,
        pack: &mut Vec<T>,
        m: usize,
        in_order: Option<usize>,
        row_id: impl Fn(usize) -> usize,
    ) -> *const T {
        let w = self.view.width;
        if let (Some(lo), RowMap::Identity) = (in_order, &self.map) {
            assert!((lo + m) * w <= self.view.len(), "rows beyond the buffer");
            // SAFETY: in bounds (checked above).
            return unsafe { self.view.ptr().add(lo * w) };
        }
        pack.clear();
        for j in 0..m {
            // SAFETY: operands are not written by this kernel (access rules).
            pack.extend_from_slice(unsafe { self.view.row(self.map.get(row_id(j))) });
        }
        pack.as_ptr()
    }
}

/// Runs one weight-gradient kernel.
pub(super) fn run<T: Float>(env: &Env, g: &WeightGrad, views: &Views<T>) -> Result<()> {
    let (bb, cb) = (env.buffer(g.b.0)?, env.buffer(g.c)?);
    let rows = env.count(g.rows)?;
    let slices = env.count(cb.rows)?;
    let (k, n, batch, per_batch_c) = match g.form {
        LinearForm::Plain { k, n } => (k, n, 1, false),
        LinearForm::Batched { batch, k, n } => (k, n, batch, true),
        LinearForm::Broadcast { batch, k, n } => (k, n, batch, false),
    };
    let c_width = if per_batch_c { batch * k * n } else { k * n };
    if cb.shape.numel() != c_width || bb.shape.numel() != batch * n {
        return Err(internal(format!(
            "weight gradient {:?} does not fit b {} and c {}",
            g.form, bb.shape, cb.shape
        )));
    }
    let a = match g.a {
        Some((buf, index)) => {
            let ab = env.buffer(buf)?;
            if ab.shape.numel() != batch * k {
                return Err(internal(format!("a {} does not fit {:?}", ab.shape, g.form)));
            }
            Some(Operand { view: views.get(buf), map: resolve(env, index, g.rows, ab.rows)? })
        }
        None if k == 1 && batch == 1 => None,
        None => return Err(internal(format!("a segmented sum has form {:?}", g.form))),
    };
    let b = Operand { view: views.get(g.b.0), map: resolve(env, g.b.1, g.rows, bb.rows)? };
    let select = resolve(env, RowIndex::Select(g.segment), g.rows, cb.rows)?;
    let kind = classify_rows(g.segment, g.rows, cb.rows);
    let segs = segments(kind, env.graph, env.layouts, rows, slices, |i| select.get(i))?;
    // A sum does not depend on the order of its rows: when the edges are already grouped by
    // relation, the relation segments are ranges of edge ids and edge-row operands are read
    // in place (the layout's order also sorts each relation by destination).
    let in_id_order =
        kind == Segmentation::EdgesByRelation && env.graph.rel.windows(2).all(|w| w[0] <= w[1]);
    let order = segs.order.as_deref().filter(|_| !in_id_order);
    let blocks: Vec<(usize, usize, usize)> = segs
        .offsets
        .windows(2)
        .enumerate()
        .flat_map(|(s, w)| {
            (w[0]..w[1]).step_by(BLOCK).map(move |lo| (s, lo, (lo + BLOCK).min(w[1])))
        })
        .collect();
    let partials: Vec<Vec<T>> = blocks
        .par_iter()
        .map_init(
            || (Vec::new(), Vec::new(), Vec::new()),
            |(pa, pb, ones), &(_, lo, hi)| {
                let m = hi - lo;
                let row_id = |j: usize| order.map_or(lo + j, |o| o[lo + j] as usize);
                let in_order = order.is_none().then_some(lo);
                let bp = b.rows(pb, m, in_order, row_id);
                let ap = match &a {
                    Some(a) => a.rows(pa, m, in_order, row_id),
                    None => {
                        ones.resize(m, T::from_f64(1.0));
                        ones.as_ptr()
                    }
                };
                let (aw, bw) = (batch * k, batch * n);
                let mut c = vec![T::ZERO; c_width];
                // SAFETY: A holds m rows of aw values and B m rows of bw values; C holds
                // c_width values; A^T is read through swapped strides.
                unsafe {
                    if per_batch_c {
                        for bi in 0..batch {
                            T::gemm(
                                k,
                                m,
                                n,
                                (ap.add(bi * k), 1, aw as isize),
                                (bp.add(bi * n), bw as isize, 1),
                                T::ZERO,
                                (c.as_mut_ptr().add(bi * k * n), n as isize, 1),
                            );
                        }
                    } else {
                        T::gemm(
                            k,
                            m * batch,
                            n,
                            (ap, 1, k as isize),
                            (bp, n as isize, 1),
                            T::ZERO,
                            (c.as_mut_ptr(), n as isize, 1),
                        );
                    }
                }
                c
            },
        )
        .collect();
    let out = views.get(g.c);
    for s in 0..slices {
        // SAFETY: C is written by this kernel only, here, one row at a time.
        let row = unsafe { out.row_mut(s) };
        row.iter_mut().for_each(|v| *v = T::ZERO);
        for (part, _) in partials.iter().zip(&blocks).filter(|(_, blk)| blk.0 == s) {
            row.iter_mut().zip(part).for_each(|(v, &p)| *v += p);
        }
    }
    Ok(())
}
