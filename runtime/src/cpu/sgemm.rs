//! An f32 GEMM for the shapes relational GNNs multiply: `C = A B` with a few dozen columns
//! (hidden widths of 16 to 256) and any number of rows, with AVX2 and FMA where the CPU has
//! them (detected at run time; the crate targets baseline x86-64).
//!
//! matrixmultiply packs both operands of every call into panels. For these shapes that packing
//! costs as much as a fifth of the multiplication (measured on HGT over ACM: 10% of the
//! samples of a training step in `pack_avx2` beside 28% in its kernel), and the GEMM template
//! calls it once per chunk of 256 rows, so B is packed again for every chunk. This kernel
//! packs nothing: for each block of up to six rows of C and sixteen columns, it streams B's
//! rows (contiguous; blocks of 64 steps keep them in L1) and broadcasts A's elements one by
//! one, so A is read in place, by rows (gathered rows) or by steps (the transpose weight
//! gradients read, `wgrad.rs`). Twelve accumulators, two B vectors and one broadcast fill the
//! sixteen registers.
//!
//! [`sgemm`] takes this path when the CPU has AVX2 and FMA, one of A's strides and B's and C's
//! column strides are 1, C is overwritten (`beta == 0`) and the width is a multiple of 8;
//! anything else goes to matrixmultiply.
//!
//! Measured on the 2-core EPYC VM, single thread, `pigeon bench --train` on ACM: HGT's node
//! GEMMs (11,246 x 64 x 64) 2.4 -> 1.3 ms; R-GCN's forward GEMMs 2.4-2.9 -> 1.8-2.5 ms and
//! 2.1-2.5 -> 1.4-2.2 ms; weight gradients on par with matrixmultiply.

/// `C = A B` (`beta == 0`) or `C = A B + beta C`, by this module's kernel where it applies
/// (see the module doc), otherwise by matrixmultiply.
///
/// # Safety
/// As for `matrixmultiply::sgemm`: A is `m x k` with strides `a.1, a.2`, B `k x n` with
/// strides `b.1, b.2`, C `m x n` with strides `c.1, c.2`, all in bounds, C not overlapping A
/// or B.
// `n % 8`: `is_multiple_of` needs Rust 1.87 (the README promises 1.80).
#[allow(clippy::too_many_arguments, clippy::manual_is_multiple_of)]
pub(super) unsafe fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: (*const f32, isize, isize),
    b: (*const f32, isize, isize),
    beta: f32,
    c: (*mut f32, isize, isize),
) {
    #[cfg(target_arch = "x86_64")]
    if beta == 0.0
        && (a.1 == 1 || a.2 == 1)
        && b.2 == 1
        && c.2 == 1
        && n % 8 == 0
        && super::float::has_avx2_fma()
    {
        // SAFETY: the CPU has AVX2 and FMA (checked); the operands are the caller's.
        return unsafe { avx2::gemm(m, k, n, a, b.0, b.1, c.0, c.1) };
    }
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        matrixmultiply::sgemm(m, k, n, 1.0, a.0, a.1, a.2, b.0, b.1, b.2, beta, c.0, c.1, c.2)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Rows of C per block.
    const MR: usize = 6;
    /// Steps of the reduction per block.
    const KC: usize = 64;

    /// `C = A B` with B's and C's columns contiguous and `n % 8 == 0`.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA; the operands as for [`super::sgemm`].
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: (*const f32, isize, isize),
        b: *const f32,
        rsb: isize,
        c: *mut f32,
        rsc: isize,
    ) {
        if k == 0 {
            for i in 0..m {
                // SAFETY: row i of C holds n values.
                unsafe { std::slice::from_raw_parts_mut(c.offset(i as isize * rsc), n).fill(0.0) };
            }
            return;
        }
        // Blocks of KC steps of the reduction: a block's rows of B stay in cache while every
        // block of rows of C goes over them. A is read in place, by rows (its steps
        // contiguous) or, transposed as weight gradients read it, by steps (its rows
        // contiguous).
        let mut p0 = 0;
        while p0 < k {
            let kc = KC.min(k - p0);
            // SAFETY: steps p0..p0 + kc of A and B exist; the rest is the caller's contract.
            unsafe {
                let ak = (a.0.offset(p0 as isize * a.2), a.1, a.2);
                let bk = b.offset(p0 as isize * rsb);
                if a.2 == 1 {
                    block::<false>(m, kc, n, ak, bk, rsb, c, rsc, p0 > 0);
                } else {
                    block::<true>(m, kc, n, ak, bk, rsb, c, rsc, p0 > 0);
                }
            }
            p0 += kc;
        }
    }

    /// `C (+)= A B` for `m` rows; A's steps are contiguous, or its rows when `TR`.
    ///
    /// # Safety
    /// As for [`gemm`], with `a.2 == 1`, or `a.1 == 1` when `TR`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block<const TR: bool>(
        m: usize,
        k: usize,
        n: usize,
        a: (*const f32, isize, isize),
        b: *const f32,
        rsb: isize,
        c: *mut f32,
        rsc: isize,
        add: bool,
    ) {
        let mut i = 0;
        // SAFETY (all calls): rows i..i + R of A and C exist; the rest is the caller's.
        unsafe {
            while i + MR <= m {
                rows::<MR, TR>(i, k, n, a, b, rsb, c, rsc, add);
                i += MR;
            }
            match m - i {
                5 => rows::<5, TR>(i, k, n, a, b, rsb, c, rsc, add),
                4 => rows::<4, TR>(i, k, n, a, b, rsb, c, rsc, add),
                3 => rows::<3, TR>(i, k, n, a, b, rsb, c, rsc, add),
                2 => rows::<2, TR>(i, k, n, a, b, rsb, c, rsc, add),
                1 => rows::<1, TR>(i, k, n, a, b, rsb, c, rsc, add),
                _ => {}
            }
        }
    }

    /// Rows `i0..i0 + R` of C, in panels of 16 columns and a last one of 8, overwritten or,
    /// when `add`, added into.
    ///
    /// # Safety
    /// As for [`gemm`], with rows `i0..i0 + R` in bounds.
    // The accumulators are indexed by row in unrolled loops (registers, not an iterator).
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn rows<const R: usize, const TR: bool>(
        i0: usize,
        k: usize,
        n: usize,
        (a, rsa, csa): (*const f32, isize, isize),
        b: *const f32,
        rsb: isize,
        c: *mut f32,
        rsc: isize,
        add: bool,
    ) {
        // SAFETY (the whole body): every offset stays inside A (rows i0..i0 + R, columns
        // 0..k), B (rows 0..k, columns 0..n) and C (rows i0..i0 + R, columns 0..n).
        unsafe {
            let arow: [*const f32; R] = std::array::from_fn(|r| a.offset((i0 + r) as isize * rsa));
            // Element (i0 + r, p) of A: along its row, or (`TR`, rows contiguous) at `r` from
            // the step's first one.
            let at = |r: usize, p: usize| {
                if TR {
                    a.offset(i0 as isize + p as isize * csa).add(r)
                } else {
                    arow[r].add(p)
                }
            };
            let crow: [*mut f32; R] = std::array::from_fn(|r| c.offset((i0 + r) as isize * rsc));
            let mut j = 0;
            while j + 16 <= n {
                let mut acc = [[_mm256_setzero_ps(); 2]; R];
                let mut bp = b.add(j);
                for p in 0..k {
                    let b0 = _mm256_loadu_ps(bp);
                    let b1 = _mm256_loadu_ps(bp.add(8));
                    for r in 0..R {
                        let x = _mm256_broadcast_ss(&*at(r, p));
                        acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
                        acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
                    }
                    bp = bp.offset(rsb);
                }
                for r in 0..R {
                    put(crow[r].add(j), acc[r][0], add);
                    put(crow[r].add(j + 8), acc[r][1], add);
                }
                j += 16;
            }
            if j < n {
                let mut acc = [_mm256_setzero_ps(); R];
                let mut bp = b.add(j);
                for p in 0..k {
                    let b0 = _mm256_loadu_ps(bp);
                    for r in 0..R {
                        let x = _mm256_broadcast_ss(&*at(r, p));
                        acc[r] = _mm256_fmadd_ps(x, b0, acc[r]);
                    }
                    bp = bp.offset(rsb);
                }
                for r in 0..R {
                    put(crow[r].add(j), acc[r], add);
                }
            }
        }
    }

    /// Stores 8 values at `p`, or adds them to those there.
    ///
    /// # Safety
    /// The CPU must have AVX2; `p` must hold 8 values.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn put(p: *mut f32, v: __m256, add: bool) {
        // SAFETY: the caller's contract.
        unsafe {
            let v = if add { _mm256_add_ps(_mm256_loadu_ps(p), v) } else { v };
            _mm256_storeu_ps(p, v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `C = A B` in f64 with A read through strides `(rsa, csa)`.
    fn naive(
        m: usize,
        k: usize,
        n: usize,
        a: &[f32],
        (rsa, csa): (usize, usize),
        b: &[f32],
    ) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] =
                    (0..k).map(|p| f64::from(a[i * rsa + p * csa]) * f64::from(b[p * n + j])).sum();
            }
        }
        c
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 - 500.0) / 250.0).collect()
    }

    /// Every row remainder (1..6), panel remainders (8, 16 + 8), k from 0, row-major and
    /// transposed A, against the f64 product; wider rows of C keep the values beyond n.
    #[test]
    fn sgemm_matches_the_product_for_every_remainder() {
        for &(m, k, n) in
            &[(1, 3, 8), (5, 0, 16), (6, 64, 64), (13, 17, 24), (100, 64, 40), (7, 5, 8)]
        {
            let b = values(k * n, 2);
            for transposed in [false, true] {
                let a = values(m * k, 1);
                let strides = if transposed { (1, m) } else { (k, 1) };
                let cw = n + 3;
                let mut c = vec![9.0f32; m * cw];
                // SAFETY: the operands hold m x k, k x n and m x cw values.
                unsafe {
                    sgemm(
                        m,
                        k,
                        n,
                        (a.as_ptr(), strides.0 as isize, strides.1 as isize),
                        (b.as_ptr(), n as isize, 1),
                        0.0,
                        (c.as_mut_ptr(), cw as isize, 1),
                    )
                };
                let want = naive(m, k, n, &a, strides, &b);
                for i in 0..m {
                    for j in 0..cw {
                        let got = f64::from(c[i * cw + j]);
                        if j >= n {
                            assert_eq!(
                                got, 9.0,
                                "({m}, {k}, {n}) C[{i}, {j}] beyond n was written"
                            );
                            continue;
                        }
                        let w = want[i * n + j];
                        assert!(
                            (got - w).abs() <= 1e-5 * (1.0 + w.abs()) * (k as f64).max(1.0),
                            "({m}, {k}, {n}, transposed {transposed}) C[{i}, {j}] = {got}, want {w}"
                        );
                    }
                }
            }
        }
    }
}
