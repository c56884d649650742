//! The GEMM template's static configuration (tile width, vector accesses, launch geometry),
//! decided per kernel from its shapes, and a host-side model of how `cuda/gemm.cuh` maps
//! threads and `mma` fragments to the elements of a tile, checked by the tests below.

// The thread and fragment model below is exercised by the tests (tile_tests.rs) only.
#![cfg_attr(not(test), allow(dead_code))]

use crate::spec::GemmMath;
use pigeon_ir::shape::LinearForm;

/// Positions (rows) per block; `TILE_M` in `gemm.cuh`.
pub const TILE_M: usize = 64;
/// Threads per block; `THREADS` in `gemm.cuh`.
pub const THREADS: usize = 256;

/// A GEMM's compile-time constants, as the functor in the generated code states them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileConfig {
    /// Contracted extent.
    pub k: usize,
    /// Output columns per batch.
    pub n: usize,
    /// Batches.
    pub batch: usize,
    /// Floats per A row.
    pub a_width: usize,
    /// Floats per B slice.
    pub b_slice: usize,
    /// Floats between the B matrices of consecutive batches (0: one matrix for all).
    pub b_batch: usize,
    /// Floats per C row.
    pub c_width: usize,
    /// Columns per block: 16, 32 or 64.
    pub tile_n: usize,
    /// float4 A copies: every A row segment a block reads starts at a multiple of 4 floats.
    pub vec_a: bool,
    /// float4 B copies.
    pub vec_b: bool,
    /// float4 C stores.
    pub vec_c: bool,
}

impl TileConfig {
    /// The configuration for `form` with the operands' per-row widths.
    pub fn new(form: &LinearForm, a_width: usize, b_slice: usize, c_width: usize) -> Self {
        let (batch, k, n, b_batch) = match *form {
            LinearForm::Plain { k, n } => (1, k, n, 0),
            LinearForm::Batched { batch, k, n } => (batch, k, n, k * n),
            LinearForm::Broadcast { batch, k, n } => (batch, k, n, 0),
        };
        // The widest tile that is not mostly padding: n = 64 (the usual hidden size) gets one
        // column tile per batch; heads of 16 get 16.
        let tile_n = if n > 32 {
            64
        } else if n > 16 {
            32
        } else {
            16
        };
        // A row offsets are a_row * a_width + bi * k + k0 + c with k0, c multiples of 4; B
        // offsets seg * b_slice + bi * b_batch + kk * n + n0 + c; C offsets out * c_width +
        // bi * n + j. Buffers start 16-byte aligned.
        let vec_a = k % 4 == 0 && a_width % 4 == 0;
        let vec_b = n % 4 == 0 && b_slice % 4 == 0 && b_batch % 4 == 0;
        let vec_c = n % 4 == 0 && c_width % 4 == 0;
        TileConfig { k, n, batch, a_width, b_slice, b_batch, c_width, tile_n, vec_a, vec_b, vec_c }
    }

    /// Blocks along y: batches times column tiles.
    pub fn y_blocks(&self) -> usize {
        self.batch * self.n.div_ceil(self.tile_n)
    }

    /// The `minBlocksPerMultiprocessor` of `__launch_bounds__`: 4 (at most 64 registers) when
    /// every access is vectorised, 3 (at most 80) for the scalar paths, which need more
    /// addresses live; both give ptxas room to allocate without spilling.
    pub fn min_blocks(&self) -> usize {
        if self.vec_a && self.vec_b && self.vec_c {
            4
        } else {
            3
        }
    }

    /// The K step: `min(32, K rounded up to 16)`.
    pub fn k_step(&self) -> usize {
        32.min(self.k.div_ceil(16) * 16)
    }
}

/// The tile elements `(row, column)` that thread `tid` holds in accumulator `e` (in the order
/// of the engine's accumulator array), for each engine of `gemm.cuh`.
pub fn accumulator_elements(math: GemmMath, tile_n: usize, tid: usize) -> Vec<(usize, usize)> {
    match math {
        GemmMath::Simt => {
            let tx_count = tile_n / 4;
            let tm = TILE_M / (THREADS / tx_count);
            let (tx, ty) = (tid % tx_count, tid / tx_count);
            let mut out = Vec::new();
            for i in 0..tm {
                for j in 0..4 {
                    out.push((ty * tm + i, tx * 4 + j));
                }
            }
            out
        }
        GemmMath::Tf32 | GemmMath::Bf16 => {
            let w = WarpGrid::new(tile_n);
            let (warp, lane) = (tid / 32, tid % 32);
            let (r0, c0) = w.origin(warp);
            let mut out = Vec::new();
            for mi in 0..w.mi {
                for ni in 0..w.ni {
                    for e in 0..4 {
                        let (r, c) = mma_c_element(lane, e);
                        out.push((r0 + mi * 16 + r, c0 + ni * 8 + c));
                    }
                }
            }
            out
        }
    }
}

/// The warp grid of the tensor-core engines (`WarpGrid` in `gemm.cuh`).
#[derive(Copy, Clone, Debug)]
pub struct WarpGrid {
    /// Warps along columns.
    pub wn: usize,
    /// Warps along rows.
    pub wm: usize,
    /// m16 tiles per warp.
    pub mi: usize,
    /// n8 tiles per warp.
    pub ni: usize,
}

impl WarpGrid {
    /// The grid for a tile `tile_n` wide.
    pub fn new(tile_n: usize) -> Self {
        let wn = (tile_n / 8).min(4);
        let wm = (THREADS / 32) / wn;
        WarpGrid { wn, wm, mi: TILE_M / wm / 16, ni: tile_n / wn / 8 }
    }

    /// The first tile row and column of `warp`.
    pub fn origin(&self, warp: usize) -> (usize, usize) {
        (warp / self.wn * (TILE_M / self.wm), warp % self.wn * (self.ni * 8))
    }
}

/// The `(row, column)` of accumulator element `e` (0..4) of `lane` in a 16 x 8 tile, as
/// `stage_mma` in `gemm.cuh` writes it.
pub fn mma_c_element(lane: usize, e: usize) -> (usize, usize) {
    let (g, t) = (lane >> 2, lane & 3);
    (g + 8 * (e / 2), 2 * t + (e & 1))
}

/// The `(row, k)` elements of the A tile (16 x K_STEP) that `lane` puts in register `reg`, low
/// half first, as the engine's `step` reads them from shared memory.
pub fn mma_a_elements(math: GemmMath, lane: usize, reg: usize) -> Vec<(usize, usize)> {
    let (g, t) = (lane >> 2, lane & 3);
    match math {
        // p = &As[g][t]: p[0], p[8 rows], p[4], p[8 rows + 4].
        GemmMath::Tf32 => vec![[(g, t), (g + 8, t), (g, t + 4), (g + 8, t + 4)][reg]],
        // p = &As[g][2t]: float2 at p, p + 8 rows, p + 8, p + 8 rows + 8.
        GemmMath::Bf16 => {
            let (r, k) = [(g, 2 * t), (g + 8, 2 * t), (g, 2 * t + 8), (g + 8, 2 * t + 8)][reg];
            vec![(r, k), (r, k + 1)]
        }
        GemmMath::Simt => Vec::new(),
    }
}

/// The `(k, column)` elements of the B tile (K_STEP x 8) that `lane` puts in register `reg`.
pub fn mma_b_elements(math: GemmMath, lane: usize, reg: usize) -> Vec<(usize, usize)> {
    let (g, t) = (lane >> 2, lane & 3);
    match math {
        // p = &Bs[t][g]: p[0], p[4 rows].
        GemmMath::Tf32 => vec![[(t, g), (t + 4, g)][reg]],
        // p = &Bs[2t][g]: (p[0], p[1 row]) and (p[8 rows], p[9 rows]).
        GemmMath::Bf16 => {
            let k = 2 * t + 8 * reg;
            vec![(k, g), (k + 1, g)]
        }
        GemmMath::Simt => Vec::new(),
    }
}

#[cfg(test)]
#[path = "tile_tests.rs"]
mod tests;
