//! The GEMM template's weight-gradient form: for each slice `s` of the weight-like C,
//! `C[s] = sum over the iteration rows i selecting s of A[i]^T B[i]` (`pigeon_ir::plan::WeightGrad`),
//! with the semantics of the CPU back end's `runtime/src/cpu/wgrad.rs`: plain, batched (one
//! `K x N` matrix per batch) and broadcast (the batches summed into one `K x N`) forms, and the
//! segmented row sum without an A operand (`a one`).
//!
//! The loops are fixed C++ in `cuda/wgrad.cuh` (`pg::wgrad::run`, split-K over rows with atomic
//! adds into a C the runtime zeroes first); per kernel this module writes a functor with the
//! shapes as constants and the row order and row indices of A and B, then an `extern "C"`
//! kernel `wgrad_{model}_{index}`. Rows are segmented exactly as for the GEMM
//! ([`crate::spec::Segmentation`], decided against C's rows), and the tile table follows
//! `spec.rs` with tiles of [`TILE_M`] positions.

use crate::error::{internal, Result};
use crate::gemm::segmentation;
use crate::index::row_expr;
use crate::params::{param_name, Params};
use crate::spec::{Grid, KernelLaunch, Param};
use crate::writer::Writer;
use pigeon_ir::plan::{Buffer, BufferId, KernelId, Plan, WeightGrad};
use pigeon_ir::shape::LinearForm;

/// The fixed weight-gradient loops, inlined once per translation unit after `common.cuh`.
pub const WGRAD_CUH: &str = include_str!("../cuda/wgrad.cuh");

/// Positions per tile; `TILE_M` in `wgrad.cuh`.
pub const TILE_M: usize = 256;
/// Threads per block; `THREADS` in `wgrad.cuh`.
const THREADS: usize = 256;

/// The compile-time shape of one weight-gradient kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
struct GradShape {
    k: usize,
    n: usize,
    batch: usize,
    per_batch: bool,
    c_width: usize,
    tk: usize,
    tn: usize,
}

impl GradShape {
    /// Checks the operands as the CPU back end does and picks the C tile.
    fn new(g: &WeightGrad, a: Option<&Buffer>, b: &Buffer, c: &Buffer) -> Result<Self> {
        let (k, n, batch, per_batch) = match g.form {
            LinearForm::Plain { k, n } => (k, n, 1, false),
            LinearForm::Batched { batch, k, n } => (k, n, batch, true),
            LinearForm::Broadcast { batch, k, n } => (k, n, batch, false),
        };
        let c_width = if per_batch { batch * k * n } else { k * n };
        if c.shape.numel() != c_width || b.shape.numel() != batch * n || k == 0 || n == 0 {
            return Err(internal(format!(
                "weight gradient {:?} does not fit b {} and c {}",
                g.form, b.shape, c.shape
            )));
        }
        match a {
            Some(a) if a.shape.numel() != batch * k => {
                return Err(internal(format!("a {} does not fit {:?}", a.shape, g.form)))
            }
            None if k != 1 || batch != 1 => {
                return Err(internal(format!("a segmented sum has form {:?}", g.form)))
            }
            _ => {}
        }
        let tn = n.next_power_of_two().min(64);
        let tk = k.next_power_of_two().min(64).min(1024 / tn);
        Ok(GradShape { k, n, batch, per_batch, c_width, tk, tn })
    }

    /// Blocks along y: (batches of a batched form) x K tiles x N tiles.
    fn y_blocks(&self) -> usize {
        let batches = if self.per_batch { self.batch } else { 1 };
        batches * self.k.div_ceil(self.tk) * self.n.div_ceil(self.tn)
    }
}

fn buffer(plan: &Plan, id: BufferId) -> Result<&Buffer> {
    plan.buffers
        .get(id)
        .ok_or_else(|| internal(format!("weight gradient of a missing buffer {id}")))
}

/// Writes the kernel for `g` and returns how to launch it.
pub(crate) fn emit(
    w: &mut Writer,
    plan: &Plan,
    id: KernelId,
    g: &WeightGrad,
    name: &str,
) -> Result<KernelLaunch> {
    let a_buf = match g.a {
        Some((a, _)) => Some(buffer(plan, a)?),
        None => None,
    };
    let (b_buf, c_buf) = (buffer(plan, g.b.0)?, buffer(plan, g.c)?);
    let shape = GradShape::new(g, a_buf, b_buf, c_buf)?;
    let seg = segmentation(plan, g.segment, g.rows, c_buf.rows)?;
    let mut params = Params::new(plan, [g.c]);
    let c = params.buffer(g.c);
    let a = match g.a {
        Some((a, _)) => params.buffer(a),
        None => "nullptr".into(),
    };
    let b = params.buffer(g.b.0);
    let row =
        if seg.has_order() { format!("{}[p]", params.add(Param::GemmOrder)) } else { "p".into() };
    let tiles = params.add(Param::GemmTiles);
    let rows = params.count(g.rows);
    let a_row = match (g.a, a_buf) {
        (Some((_, index)), Some(ab)) => row_expr(&mut params, index, g.rows, ab.rows, "i")?,
        _ => "0u".into(),
    };
    let b_row = row_expr(&mut params, g.b.1, g.rows, b_buf.rows, "i")?;

    let functor = format!("{name}_f");
    w.line(format!("// {name}: {:?} rows, {seg:?}, {:?}, a {}", g.rows, g.form, a_row_text(g)));
    w.open(format!("struct {functor}"));
    constants(w, &shape, g.a.is_some());
    w.line("const float* a;");
    w.line("const float* b;");
    w.line("float* c;");
    let mut members = vec![a, b, c];
    for p in params.clone().into_list() {
        if matches!(p, Param::Array(_) | Param::GemmOrder) {
            let name = param_name(p);
            w.line(format!("const unsigned* {name};"));
            members.push(name);
        }
    }
    let f = "__device__ __forceinline__";
    w.line(format!("{f} unsigned row(unsigned p) const {{ return {row}; }}"));
    w.line(format!("{f} unsigned a_row(unsigned i) const {{ return {a_row}; }}"));
    w.line(format!("{f} unsigned b_row(unsigned i) const {{ return {b_row}; }}"));
    w.close_with(";");

    // 4 blocks per multiprocessor: a budget of 64 registers (the bound alone makes ptxas aim
    // at 32 and spill the accumulators of a summed batch).
    w.open(format!(
        "extern \"C\" __global__ void __launch_bounds__({THREADS}, 4) {name}({})",
        params.signature()
    ));
    w.line(format!("const {functor} f{{{}}};", members.join(", ")));
    w.line(format!("pg::wgrad::run(f, {tiles}, {rows});"));
    w.close();

    Ok(KernelLaunch {
        kernel: id,
        name: name.to_string(),
        params: params.into_list(),
        grid: Grid::Gemm { tile_m: TILE_M as u32, y_blocks: shape.y_blocks() as u32 },
        block: THREADS as u32,
        segmentation: Some(seg),
    })
}

fn a_row_text(g: &WeightGrad) -> String {
    match g.a {
        Some((b, index)) => format!("{b} by {index:?}"),
        None => "one".into(),
    }
}

/// The functor's compile-time constants (see the head of `wgrad.cuh`).
fn constants(w: &mut Writer, s: &GradShape, has_a: bool) {
    let (k, n, batch) = (s.k, s.n, s.batch);
    w.line(format!("static constexpr unsigned K = {k}, N = {n}, BATCH = {batch};"));
    w.line(format!(
        "static constexpr unsigned A_WIDTH = {}, B_WIDTH = {}, C_WIDTH = {};",
        batch * k,
        batch * n,
        s.c_width
    ));
    w.line(format!("static constexpr unsigned TK = {}, TN = {};", s.tk, s.tn));
    w.line(format!("static constexpr bool PER_BATCH = {}, HAS_A = {has_a};", s.per_batch));
}

#[cfg(test)]
mod tests {
    use super::*;
    use pigeon_ir::plan::{BufferKind, RowIndex, RowSpace};
    use pigeon_ir::{DType, EntityId, Select};

    fn buf(rows: RowSpace, dims: &[usize]) -> Buffer {
        Buffer {
            name: "x".into(),
            rows,
            shape: pigeon_ir::Shape(dims.to_vec()),
            dtype: DType::F32,
            kind: BufferKind::Temp,
            slot: None,
        }
    }

    fn grad(form: LinearForm, a: bool) -> WeightGrad {
        WeightGrad {
            rows: RowSpace::Edges,
            segment: Select::Relation,
            a: a.then_some((BufferId::new(0), RowIndex::This)),
            b: (BufferId::new(1), RowIndex::This),
            form,
            c: BufferId::new(2),
        }
    }

    /// A host model of `pg::wgrad::run` for one segment of `rows` rows (rows in order, A and B
    /// row `i` for iteration row `i`): tiles of `TILE_M` positions, blocks over (tile, C tile),
    /// threads owning outputs `tid + q * THREADS` of the tile, rows staged `CHUNK` at a time
    /// with the kernel's guards, partial tiles added into C.
    fn emulate(s: &GradShape, rows: usize, a: Option<&[f32]>, b: &[f32]) -> Vec<f32> {
        const CHUNK: usize = 32;
        let (k_tiles, n_tiles) = (s.k.div_ceil(s.tk), s.n.div_ceil(s.tn));
        let out = s.tk * s.tn;
        let summed = if s.per_batch { 1 } else { s.batch };
        let mut c = vec![0.0f32; s.c_width];
        for start in (0..rows).step_by(TILE_M) {
            let end = (start + TILE_M).min(rows);
            for y in 0..s.y_blocks() {
                let (nt, kt, cb) = (y % n_tiles, (y / n_tiles) % k_tiles, y / (n_tiles * k_tiles));
                let (k0, n0) = (kt * s.tk, nt * s.tn);
                for tid in 0..THREADS {
                    for o in (tid..out).step_by(THREADS) {
                        let (kk, j) = (k0 + o / s.tn, n0 + o % s.tn);
                        let mut acc = 0.0f32;
                        for sb in 0..summed {
                            let bi = if s.per_batch { cb } else { sb };
                            for p0 in (start..end).step_by(CHUNK) {
                                for r in p0..(p0 + CHUNK).min(end) {
                                    let av = match a {
                                        Some(a) if kk < s.k => a[r * s.batch * s.k + bi * s.k + kk],
                                        None if kk < s.k => 1.0,
                                        _ => 0.0,
                                    };
                                    let bv = if j < s.n {
                                        b[r * s.batch * s.n + bi * s.n + j]
                                    } else {
                                        0.0
                                    };
                                    acc += av * bv;
                                }
                            }
                        }
                        if kk < s.k && j < s.n {
                            let base = if s.per_batch { cb * s.k * s.n } else { 0 };
                            c[base + kk * s.n + j] += acc;
                        }
                    }
                }
            }
        }
        c
    }

    /// `sum_i A[i]^T B[i]` in the form's layout, directly.
    fn direct(s: &GradShape, rows: usize, a: Option<&[f32]>, b: &[f32]) -> Vec<f32> {
        let mut c = vec![0.0f32; s.c_width];
        for r in 0..rows {
            for bi in 0..s.batch {
                for kk in 0..s.k {
                    let av = a.map_or(1.0, |a| a[r * s.batch * s.k + bi * s.k + kk]);
                    for j in 0..s.n {
                        let at = if s.per_batch { bi * s.k * s.n } else { 0 } + kk * s.n + j;
                        c[at] += av * b[r * s.batch * s.n + bi * s.n + j];
                    }
                }
            }
        }
        c
    }

    #[test]
    fn the_device_loops_compute_every_form() {
        let e = RowSpace::Edges;
        let cases: &[(LinearForm, bool)] = &[
            (LinearForm::Plain { k: 11, n: 3 }, true),
            (LinearForm::Plain { k: 70, n: 100 }, true),
            (LinearForm::Batched { batch: 2, k: 3, n: 5 }, true),
            (LinearForm::Broadcast { batch: 3, k: 4, n: 33 }, true),
            (LinearForm::Plain { k: 1, n: 6 }, false),
        ];
        for (form, has_a) in cases {
            let g = grad(form.clone(), *has_a);
            let (batch, k, n, c_width) = match *form {
                LinearForm::Plain { k, n } => (1, k, n, k * n),
                LinearForm::Batched { batch, k, n } => (batch, k, n, batch * k * n),
                LinearForm::Broadcast { batch, k, n } => (batch, k, n, k * n),
            };
            let ab = buf(e, &[batch * k]);
            let s = GradShape::new(
                &g,
                has_a.then_some(&ab),
                &buf(e, &[batch * n]),
                &buf(e, &[c_width]),
            )
            .unwrap_or_else(|err| panic!("{err}"));
            let rows = 600;
            let val = |i: usize| ((i * 37 % 23) as f32 - 11.0) * 0.125;
            let a: Vec<f32> = (0..rows * batch * k).map(val).collect();
            let b: Vec<f32> = (0..rows * batch * n).map(|i| val(i + 5)).collect();
            let a = has_a.then_some(&a[..]);
            let (got, want) = (emulate(&s, rows, a, &b), direct(&s, rows, a, &b));
            for (x, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-3 * w.abs().max(1.0),
                    "{form:?} element {x}: {g} vs {w}"
                );
            }
        }
    }

    #[test]
    fn shapes_and_tiles_follow_the_form() {
        let e = RowSpace::Edges;
        let r = RowSpace::Relations;
        let g = grad(LinearForm::Plain { k: 64, n: 64 }, true);
        let s = GradShape::new(&g, Some(&buf(e, &[64])), &buf(e, &[64]), &buf(r, &[64, 64]));
        let s = s.unwrap_or_else(|err| panic!("{err}"));
        assert_eq!((s.tk, s.tn, s.y_blocks()), (16, 64, 4));
        let g = grad(LinearForm::Batched { batch: 4, k: 16, n: 8 }, true);
        let s = GradShape::new(&g, Some(&buf(e, &[4, 16])), &buf(e, &[4, 8]), &buf(r, &[4, 16, 8]));
        let s = s.unwrap_or_else(|err| panic!("{err}"));
        assert_eq!((s.tk, s.tn, s.c_width, s.y_blocks()), (16, 8, 512, 4));
        let g = grad(LinearForm::Broadcast { batch: 4, k: 16, n: 8 }, true);
        let s = GradShape::new(&g, Some(&buf(e, &[4, 16])), &buf(e, &[4, 8]), &buf(r, &[16, 8]));
        assert_eq!(s.map(|s| (s.c_width, s.y_blocks())), Ok((128, 1)));
        let g = grad(LinearForm::Plain { k: 1, n: 3 }, false);
        let s = GradShape::new(&g, None, &buf(e, &[3]), &buf(r, &[3]));
        assert_eq!(s.map(|s| (s.tk, s.tn)), Ok((1, 4)));
        let bad = GradShape::new(&g, None, &buf(e, &[4]), &buf(r, &[3]));
        assert!(matches!(bad, Err(crate::CodegenError::Internal(_))));
        let g = grad(LinearForm::Plain { k: 2, n: 3 }, false);
        let bad = GradShape::new(&g, None, &buf(e, &[3]), &buf(r, &[2, 3]));
        assert!(matches!(bad, Err(crate::CodegenError::Internal(_))));
    }
}
