//! Tests of the tile model: every output element computed exactly once, loads covering each
//! shared-memory tile exactly once, and the `mma` fragments the template reads, pushed through
//! the PTX ISA's definition of the instruction, giving the product of the tiles.

use super::*;

const ENGINES: [GemmMath; 3] = [GemmMath::Simt, GemmMath::Tf32, GemmMath::Bf16];

/// Counts how often each element of a `rows x cols` grid is produced by `elements`.
fn coverage(rows: usize, cols: usize, elements: impl Iterator<Item = (usize, usize)>) -> Vec<u32> {
    let mut seen = vec![0u32; rows * cols];
    for (r, c) in elements {
        assert!(r < rows && c < cols, "({r}, {c}) outside {rows} x {cols}");
        seen[r * cols + c] += 1;
    }
    seen
}

#[test]
fn every_output_element_has_exactly_one_owner() {
    for math in ENGINES {
        for tile_n in [16, 32, 64] {
            let all = (0..THREADS).flat_map(|tid| accumulator_elements(math, tile_n, tid));
            let seen = coverage(TILE_M, tile_n, all);
            assert!(seen.iter().all(|&s| s == 1), "{math:?} tile_n {tile_n}: {seen:?}");
        }
    }
}

/// The `Loader` items of `gemm.cuh`: `(row, first column)` of each copy of `v` floats of a
/// `rows x cols` tile, over all threads and copy slots.
fn loader_items(rows: usize, cols: usize, v: usize) -> Vec<(usize, usize)> {
    let items = rows * cols / v;
    let slots = items.div_ceil(THREADS);
    let mut out = Vec::new();
    for tid in 0..THREADS {
        for s in 0..slots {
            let idx = tid + s * THREADS;
            if idx < items {
                out.push((idx / (cols / v), (idx % (cols / v)) * v));
            }
        }
    }
    out
}

#[test]
fn loads_cover_each_shared_tile_once() {
    for k in [1, 16, 37, 64, 128] {
        let cfg = TileConfig::new(&LinearForm::Plain { k, n: 64 }, k, k * 64, 64);
        let kt = cfg.k_step();
        assert!(kt % 16 == 0 && kt <= 32, "k step {kt} for k {k}");
        for tile_n in [16, 32, 64] {
            for v in [1, 4] {
                let a = loader_items(TILE_M, kt, v);
                let a = a.iter().flat_map(|&(r, c)| (0..v).map(move |e| (r, c + e)));
                assert!(coverage(TILE_M, kt, a).iter().all(|&s| s == 1));
                let b = loader_items(kt, tile_n, v);
                let b = b.iter().flat_map(|&(r, c)| (0..v).map(move |e| (r, c + e)));
                assert!(coverage(kt, tile_n, b).iter().all(|&s| s == 1));
            }
        }
    }
}

/// The PTX ISA's element `i` of each fragment (sections "Matrix Fragments for mma.m16n8k8" and
/// "... mma.m16n8k16 with floating point type"), written from the tables, independently of the
/// template's model: `(row, col)` of A element `i`, B element `i`, C element `i` of `lane`.
fn isa_a(math: GemmMath, lane: usize, i: usize) -> (usize, usize) {
    let (group, tig) = (lane >> 2, lane % 4);
    match math {
        GemmMath::Tf32 => {
            let row = if i == 0 || i == 2 { group } else { group + 8 };
            let col = if i < 2 { tig } else { tig + 4 };
            (row, col)
        }
        _ => {
            let row = if i < 2 || (4..6).contains(&i) { group } else { group + 8 };
            let col = tig * 2 + (i & 1) + if i >= 4 { 8 } else { 0 };
            (row, col)
        }
    }
}

fn isa_b(math: GemmMath, lane: usize, i: usize) -> (usize, usize) {
    let (group, tig) = (lane >> 2, lane % 4);
    match math {
        GemmMath::Tf32 => (if i == 0 { tig } else { tig + 4 }, group),
        _ => (tig * 2 + (i & 1) + if i >= 2 { 8 } else { 0 }, group),
    }
}

fn isa_c(lane: usize, i: usize) -> (usize, usize) {
    let (group, tig) = (lane >> 2, lane % 4);
    (if i < 2 { group } else { group + 8 }, tig * 2 + (i & 1))
}

/// A deterministic, position-dependent value (distinct enough to catch any misplacement).
fn value(seed: usize, r: usize, c: usize) -> f64 {
    ((seed * 7919 + r * 131 + c * 17) % 1009) as f64 / 37.0 - 13.0
}

#[test]
fn mma_fragments_as_read_give_the_product() {
    for (math, k, per_reg) in [(GemmMath::Tf32, 8, 1), (GemmMath::Bf16, 16, 2)] {
        let a = |r: usize, c: usize| value(1, r, c);
        let b = |r: usize, c: usize| value(2, r, c);
        // What each lane holds, in ISA element order: registers in order, low half first.
        let mut a_hw = vec![f64::NAN; 16 * k];
        let mut b_hw = vec![f64::NAN; k * 8];
        for lane in 0..32 {
            let a_regs = (0..4).flat_map(|reg| mma_a_elements(math, lane, reg));
            for (i, (r, c)) in a_regs.enumerate() {
                let (hr, hc) = isa_a(math, lane, i);
                assert!(a_hw[hr * k + hc].is_nan(), "A ({hr}, {hc}) twice");
                a_hw[hr * k + hc] = a(r, c);
            }
            let b_regs = (0..2).flat_map(|reg| mma_b_elements(math, lane, reg));
            for (i, (r, c)) in b_regs.enumerate() {
                let (hr, hc) = isa_b(math, lane, i);
                assert!(b_hw[hr * 8 + hc].is_nan(), "B ({hr}, {hc}) twice");
                b_hw[hr * 8 + hc] = b(r, c);
            }
            assert_eq!(mma_a_elements(math, lane, 0).len(), per_reg);
        }
        // The instruction: D = A B on the matrices the lanes described, then each lane's D
        // elements land where the template's stage puts them.
        let mut staged = vec![f64::NAN; 16 * 8];
        for lane in 0..32 {
            for e in 0..4 {
                let (hr, hc) = isa_c(lane, e);
                let d: f64 = (0..k).map(|kk| a_hw[hr * k + kk] * b_hw[kk * 8 + hc]).sum();
                let (r, c) = mma_c_element(lane, e);
                staged[r * 8 + c] = d;
            }
        }
        for r in 0..16 {
            for c in 0..8 {
                let want: f64 = (0..k).map(|kk| a(r, kk) * b(kk, c)).sum();
                assert_eq!(staged[r * 8 + c], want, "{math:?} ({r}, {c})");
            }
        }
    }
}

#[test]
fn warp_grids_tile_the_block() {
    for tile_n in [16, 32, 64] {
        let w = WarpGrid::new(tile_n);
        assert_eq!(w.wm * w.wn, THREADS / 32);
        let cells = (0..THREADS / 32).flat_map(|warp| {
            let (r0, c0) = w.origin(warp);
            (0..w.mi * 16).flat_map(move |r| (0..w.ni * 8).map(move |c| (r0 + r, c0 + c)))
        });
        assert!(coverage(TILE_M, tile_n, cells).iter().all(|&s| s == 1), "tile_n {tile_n}");
    }
}

#[test]
fn configurations_follow_the_shapes() {
    let c = TileConfig::new(&LinearForm::Plain { k: 64, n: 64 }, 64, 4096, 64);
    assert_eq!((c.tile_n, c.y_blocks(), c.vec_a, c.vec_b, c.vec_c), (64, 1, true, true, true));
    assert_eq!((c.b_batch, c.min_blocks(), c.k_step()), (0, 4, 32));
    let c = TileConfig::new(&LinearForm::Batched { batch: 4, k: 16, n: 16 }, 64, 1024, 64);
    assert_eq!((c.tile_n, c.y_blocks(), c.b_batch, c.k_step()), (16, 4, 256, 16));
    let c = TileConfig::new(&LinearForm::Broadcast { batch: 64, k: 64, n: 1 }, 4096, 64, 64);
    assert_eq!((c.tile_n, c.y_blocks(), c.vec_a, c.vec_b, c.vec_c), (16, 64, true, false, false));
    let c = TileConfig::new(&LinearForm::Plain { k: 37, n: 45 }, 37, 37 * 45, 45);
    assert_eq!((c.tile_n, c.y_blocks(), c.vec_a, c.min_blocks()), (64, 1, false, 3));
    let c = TileConfig::new(&LinearForm::Plain { k: 64, n: 100 }, 64, 6400, 100);
    assert_eq!((c.tile_n, c.y_blocks(), c.vec_b, c.vec_c), (64, 2, true, true));
}
