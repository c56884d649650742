//! The GEMM template on the CPU: `C[rows] (+)= epilogue(A[gather(rows)] x B[segment(rows)])`.
//!
//! Rows are grouped into segments that select one B slice (relations through the
//! `EdgesByRelation` layout, compact rows and node types through their offsets, or one segment
//! for a shared B). Each segment is cut into chunks of at most [`CHUNK`] rows; a chunk's A rows
//! are gathered into a thread-local packed buffer (or read in place when the gather is the
//! identity), multiplied by the segment's B slice with matrixmultiply (strided, so batched
//! forms need no copies), post-processed by the epilogue, then written (in place when the rows
//! are in order) or added into destination nodes. Chunks run in parallel with rayon;
//! accumulation into destinations sums runs of equal destinations (edges of a relation are
//! sorted by destination) and adds each run with one atomic add per value.

use super::float::{unary, Float};
use super::index::{broadcast_offsets, resolve, RowMap};
use super::pool::{Pool, Pooled};
use super::{Env, Raw, Views};
use crate::error::{Result, RuntimeError};
use crate::segments::Segments;
use pigeon_ir::plan::{Epilogue, Gemm, RowIndex, RowSpace, StoreMode};
use pigeon_ir::shape::{self, LinearForm};
use pigeon_ir::{Endpoint, Shape, UnaryOp};
use rayon::prelude::*;

/// The most rows multiplied at once.
const CHUNK: usize = 256;

fn internal(m: String) -> RuntimeError {
    RuntimeError::Internal(m)
}

/// A resolved epilogue step.
enum Epi<'a, T> {
    /// Multiply (`true`) or add (`false`) a broadcast row.
    /// `dense`: the row has the output's shape (the offsets are the identity).
    Row { mul: bool, view: Raw<T>, map: RowMap<'a>, offsets: Vec<usize>, dense: bool },
    /// An activation.
    Unary(UnaryOp),
}

/// Everything a chunk needs.
struct Ctx<'a, T> {
    form: LinearForm,
    a: Raw<T>,
    b: Raw<T>,
    c: Raw<T>,
    gather: RowMap<'a>,
    order: Option<&'a [u32]>,
    epilogue: Vec<Epi<'a, T>>,
    /// Destination node of each row, when accumulating.
    dst: Option<&'a [u32]>,
    /// `Some(p0)`: row at position `p` is written to row `p - p0` of C (a window of
    /// [`scatter_into_src`]).
    at_position: Option<usize>,
}

/// Runs one GEMM kernel.
pub(super) fn run<T: Pooled>(env: &Env, g: &Gemm, views: &Views<T>) -> Result<()> {
    let (ab, bb, cb) = (env.buffer(g.a)?, env.buffer(g.b)?, env.buffer(g.c)?);
    let (out_shape, form) = shape::linear(&ab.shape, &bb.shape)
        .ok_or_else(|| internal(format!("cannot multiply {} by {}", ab.shape, bb.shape)))?;
    if form != g.form || out_shape.numel() != cb.shape.numel() {
        return Err(internal(format!(
            "{} x {} is {form:?} giving {out_shape}, but the kernel says {:?} into {}",
            ab.shape, bb.shape, g.form, cb.shape
        )));
    }
    let rows = env.count(g.rows)?;
    let gather = resolve(env, g.gather, g.rows, ab.rows)?;
    let dst = match (g.store, g.rows, cb.rows) {
        (StoreMode::Write, r, c) if r == c => None,
        (StoreMode::AddIntoDst, RowSpace::Edges, RowSpace::Nodes) => Some(&env.graph.dst[..]),
        (StoreMode::AddIntoSrc, RowSpace::Edges, RowSpace::Nodes) => Some(&env.graph.src[..]),
        (StoreMode::AddIntoDst, RowSpace::Compact(Endpoint::Dst), RowSpace::Nodes) => {
            Some(&env.compact(Endpoint::Dst)?.node[..])
        }
        (StoreMode::AddIntoSrc, RowSpace::Compact(Endpoint::Src), RowSpace::Nodes) => {
            Some(&env.compact(Endpoint::Src)?.node[..])
        }
        (m, r, c) => return Err(internal(format!("cannot {m:?} {r:?} rows into a {c:?} buffer"))),
    };
    let segs = segments(env, g, bb.rows, rows)?;
    let epilogue = epilogue(env, g, &out_shape, views)?;
    let ctx = Ctx {
        form,
        a: views.get(g.a),
        b: views.get(g.b),
        c: views.get(g.c),
        gather,
        order: segs.order.as_deref(),
        epilogue,
        dst,
        at_position: None,
    };
    let tasks: Vec<(usize, usize, usize)> = segs
        .offsets
        .windows(2)
        .enumerate()
        .flat_map(|(s, w)| {
            (w[0]..w[1]).step_by(CHUNK).map(move |lo| (s, lo, (lo + CHUNK).min(w[1])))
        })
        .collect();
    if g.store == StoreMode::AddIntoSrc {
        // The scatter regroups rows by source, so their order within a relation does not
        // matter: when the edges are already grouped by relation, a relation is a range of
        // edge ids, read and written in place.
        let mut ctx = ctx;
        if crate::segments::classify(g, bb.rows) == pigeon_codegen::Segmentation::EdgesByRelation
            && env.graph.rel.windows(2).all(|w| w[0] <= w[1])
        {
            ctx.order = None;
        }
        let src = dst.ok_or_else(|| internal("a source scatter without its node index".into()))?;
        return scatter_into_src(ctx, &tasks, src, env.pool);
    }
    tasks.par_iter().for_each_init(
        || (Vec::new(), Vec::new()),
        |(a, y), &(s, lo, hi)| ctx.chunk(a, y, s, lo, hi),
    );
    Ok(())
}

/// The most values of product rows [`scatter_into_src`] holds at once (32 MiB of f32); debug
/// builds (the test suite) use small windows, so that the tests' small graphs take several.
const WINDOW_VALUES: usize = if cfg!(debug_assertions) { 64 } else { 1 << 23 };

/// `AddIntoSrc` without atomics: the rows are grouped by relation and, within one, by
/// destination, so equal sources are scattered over tasks. Windows of the tasks (in position
/// order) write their product rows into a scratch table (from the pool, not cleared: the tasks
/// tile the window's positions and write every row), then each source node of the window adds
/// its rows, in position order, into its row of C; tasks of one window own disjoint sources,
/// so the result does not depend on the thread count.
fn scatter_into_src<T: Pooled>(
    mut ctx: Ctx<'_, T>,
    tasks: &[(usize, usize, usize)],
    src: &[u32],
    pool: &Pool,
) -> Result<()> {
    let c = ctx.c;
    let cw = c.width;
    let order = ctx.order;
    let row_id = |p: usize| order.map_or(p, |o| o[p] as usize);
    let mut start = 0;
    while start < tasks.len() {
        let p0 = tasks[start].1;
        let mut end = start + 1;
        while end < tasks.len() && (tasks[end].2 - p0) * cw.max(1) <= WINDOW_VALUES {
            end += 1;
        }
        let p1 = tasks[end - 1].2;
        let mut table = pool.take::<T>((p1 - p0) * cw);
        ctx.c = Raw { ptr: table.as_mut_ptr(), len: table.len(), width: cw };
        ctx.dst = None;
        ctx.at_position = Some(p0);
        tasks[start..end].par_iter().for_each_init(
            || (Vec::new(), Vec::new()),
            |(a, y), &(s, lo, hi)| ctx.chunk(a, y, s, lo, hi),
        );
        let pairs = source_runs(p0..p1, |p| src.get(row_id(p)).copied(), c.len() / cw.max(1))?;
        let runs: Vec<&[(u32, u32)]> = pairs.chunk_by(|a, b| a.0 == b.0).collect();
        runs.par_iter().with_min_len(64).for_each(|run| {
            // SAFETY: each source is one run, so this task owns its row of C, which no other
            // access of the kernel touches (rule 4).
            let out = unsafe { c.row_mut(run[0].0 as usize) };
            for &(_, q) in run.iter() {
                let q = q as usize;
                for (o, &v) in out.iter_mut().zip(&table[q * cw..(q + 1) * cw]) {
                    *o += v;
                }
            }
        });
        pool.give([table]);
        start = end;
    }
    Ok(())
}

/// The (source, position - positions.start) pairs of `positions` sorted by source and then
/// position (runs of one source each), by a counting sort over the `nodes` sources.
fn source_runs(
    positions: std::ops::Range<usize>,
    src: impl Fn(usize) -> Option<u32>,
    nodes: usize,
) -> Result<Vec<(u32, u32)>> {
    let sources = positions
        .map(|p| src(p).filter(|&s| (s as usize) < nodes))
        .collect::<Option<Vec<u32>>>()
        .ok_or_else(|| internal("an edge beyond the source array or the nodes".into()))?;
    let mut next = vec![0usize; nodes + 1];
    for &s in &sources {
        next[s as usize + 1] += 1;
    }
    for i in 1..next.len() {
        next[i] += next[i - 1];
    }
    let mut pairs = vec![(0, 0); sources.len()];
    for (q, &s) in sources.iter().enumerate() {
        pairs[next[s as usize]] = (s, q as u32);
        next[s as usize] += 1;
    }
    Ok(pairs)
}

/// Groups the rows by the B slice they select (`crate::segments`, shared with CUDA).
fn segments<'a>(env: &Env<'a>, g: &Gemm, b_rows: RowSpace, rows: usize) -> Result<Segments<'a>> {
    let map = resolve(env, RowIndex::Select(g.segment), g.rows, b_rows)?;
    let kind = crate::segments::classify(g, b_rows);
    let slices = env.count(b_rows)?;
    crate::segments::segments(kind, env.graph, env.layouts, rows, slices, |i| map.get(i))
}

/// Resolves the epilogue steps.
fn epilogue<'a, T: Float>(
    env: &Env<'a>,
    g: &Gemm,
    out: &Shape,
    views: &Views<T>,
) -> Result<Vec<Epi<'a, T>>> {
    g.epilogue
        .iter()
        .map(|e| match e {
            Epilogue::Unary(op) => Ok(Epi::Unary(*op)),
            Epilogue::Scale { buf, index } | Epilogue::Add { buf, index } => {
                let b = env.buffer(*buf)?;
                if shape::broadcast(out, &b.shape).as_ref() != Some(out) {
                    return Err(internal(format!("epilogue row {} does not fit {out}", b.shape)));
                }
                let offsets = broadcast_offsets(&b.shape, out);
                Ok(Epi::Row {
                    mul: matches!(e, Epilogue::Scale { .. }),
                    view: views.get(*buf),
                    map: resolve(env, *index, g.rows, b.rows)?,
                    dense: offsets.iter().enumerate().all(|(i, &o)| i == o),
                    offsets,
                })
            }
        })
        .collect()
}

impl<T: Float> Ctx<'_, T> {
    /// Rows `lo..hi` (positions in the segment order) of segment `s`.
    fn chunk(&self, a_pack: &mut Vec<T>, y_buf: &mut Vec<T>, s: usize, lo: usize, hi: usize) {
        let m = hi - lo;
        let (aw, cw) = (self.a.width, self.c.width);
        let row_id = |j: usize| self.order.map_or(lo + j, |o| o[lo + j] as usize);
        let a_ptr: *const T = if self.order.is_none() && matches!(self.gather, RowMap::Identity) {
            assert!(hi * aw <= self.a.len(), "A rows beyond the buffer");
            // SAFETY: in bounds (checked above).
            unsafe { self.a.ptr().add(lo * aw) }
        } else {
            a_pack.clear();
            for j in 0..m {
                // SAFETY: A is not written by this kernel (access rule 4).
                a_pack.extend_from_slice(unsafe { self.a.row(self.gather.get(row_id(j))) });
            }
            a_pack.as_ptr()
        };
        // Products go straight to their rows of C, or of a scatter window (whose rows are
        // positions, consecutive for a chunk).
        let direct = self.dst.is_none() && (self.order.is_none() || self.at_position.is_some());
        // Row `lo` of C, or of a scatter window starting at position `p0`.
        let first = lo - self.at_position.unwrap_or(0);
        let y_ptr: *mut T = if direct {
            assert!((first + m) * cw <= self.c.len(), "C rows beyond the buffer");
            // SAFETY: in bounds; these rows of C belong to this chunk only.
            unsafe { self.c.ptr().add(first * cw) }
        } else {
            y_buf.clear();
            y_buf.resize(m * cw, T::ZERO);
            y_buf.as_mut_ptr()
        };
        let bw = self.b.width;
        assert!((s + 1) * bw <= self.b.len(), "B slice beyond the buffer");
        // SAFETY: A holds m rows of aw values, B slice s holds bw values, Y holds m rows of cw
        // values and overlaps neither (C is not read by this kernel, rule 4).
        unsafe { self.multiply(m, a_ptr, self.b.ptr().add(s * bw), y_ptr) };
        // SAFETY: Y rows are this chunk's (either scratch or C rows lo..hi).
        let y = unsafe { std::slice::from_raw_parts_mut(y_ptr, m * cw) };
        if !self.epilogue.is_empty() {
            for (j, row) in y.chunks_exact_mut(cw.max(1)).enumerate() {
                self.apply_epilogue(row_id(j), row);
            }
        }
        if direct {
            return;
        }
        match self.dst {
            None => {
                for (j, row) in y.chunks_exact(cw.max(1)).enumerate() {
                    let at = self.at_position.map_or_else(|| row_id(j), |p0| lo + j - p0);
                    // SAFETY: each row id (and position) occurs once in the order, so this
                    // chunk owns it.
                    unsafe { self.c.row_mut(at) }.copy_from_slice(row);
                }
            }
            Some(dst) => self.accumulate(dst, y, row_id, m),
        }
    }

    /// Adds the rows of `y` into their destinations, one atomic add per value and run of equal
    /// destinations.
    fn accumulate(&self, dst: &[u32], y: &mut [T], row_id: impl Fn(usize) -> usize, m: usize) {
        let cw = self.c.width;
        let mut j = 0;
        while j < m {
            let d = dst[row_id(j)];
            let mut end = j + 1;
            while end < m && dst[row_id(end)] == d {
                let (head, tail) = y.split_at_mut(end * cw);
                for (acc, &v) in head[j * cw..(j + 1) * cw].iter_mut().zip(&tail[..cw]) {
                    *acc += v;
                }
                end += 1;
            }
            // SAFETY: the destination rows of C are only accessed by atomic adds in this kernel.
            unsafe { self.c.add_atomic(d as usize, &y[j * cw..(j + 1) * cw]) };
            j = end;
        }
    }

    /// `Y = A B` for one chunk, in the kernel's form.
    ///
    /// # Safety
    /// As for [`Float::gemm`], with A `m x aw`, B one slice, Y `m x cw`, all row-major.
    unsafe fn multiply(&self, m: usize, a: *const T, b: *const T, y: *mut T) {
        let (aw, cw) = (self.a.width as isize, self.c.width as isize);
        // SAFETY (all calls): strides stay inside the operands described by the caller.
        unsafe {
            match self.form {
                LinearForm::Plain { k, n } => {
                    T::gemm(m, k, n, (a, aw, 1), (b, n as isize, 1), T::ZERO, (y, cw, 1))
                }
                LinearForm::Batched { batch, k, n } => {
                    for bi in 0..batch {
                        T::gemm(
                            m,
                            k,
                            n,
                            (a.add(bi * k), aw, 1),
                            (b.add(bi * k * n), n as isize, 1),
                            T::ZERO,
                            (y.add(bi * n), cw, 1),
                        );
                    }
                }
                LinearForm::Broadcast { batch, k, n } => T::gemm(
                    m * batch,
                    k,
                    n,
                    (a, k as isize, 1),
                    (b, n as isize, 1),
                    T::ZERO,
                    (y, n as isize, 1),
                ),
            }
        }
    }

    /// Applies the epilogue to output row `y` of iteration row `i`.
    fn apply_epilogue(&self, i: usize, y: &mut [T]) {
        for e in &self.epilogue {
            match e {
                Epi::Unary(op) => y.iter_mut().for_each(|v| *v = unary(*op, *v)),
                Epi::Row { mul, view, map, offsets, dense } => {
                    // SAFETY: epilogue operands are not written by this kernel (rule 4).
                    let r = unsafe { view.row(map.get(i)) };
                    match (*dense, *mul) {
                        (true, true) => y.iter_mut().zip(r).for_each(|(v, &x)| *v = *v * x),
                        (true, false) => y.iter_mut().zip(r).for_each(|(v, &x)| *v += x),
                        (false, true) => {
                            y.iter_mut().zip(offsets).for_each(|(v, &o)| *v = *v * r[o])
                        }
                        (false, false) => y.iter_mut().zip(offsets).for_each(|(v, &o)| *v += r[o]),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_runs_sort_by_source_then_position() {
        let src = [3u32, 1, 3, 0, 1, 3, 2];
        let got = source_runs(1..7, |p| src.get(p).copied(), 4).ok();
        let mut want: Vec<(u32, u32)> = (1..7).map(|p| (src[p], (p - 1) as u32)).collect();
        want.sort_unstable();
        assert_eq!(got, Some(want));
        assert!(source_runs(0..7, |p| src.get(p).copied(), 3).is_err(), "source 3 of 3 nodes");
        assert!(source_runs(0..8, |p| src.get(p).copied(), 4).is_err(), "beyond the array");
    }
}
