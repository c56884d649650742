//! The element types the CPU executor computes in (`f32` by default, `f64` for tests), with the
//! few operations it needs: conversions, `exp`, a strided GEMM (matrixmultiply's
//! `sgemm`/`dgemm`), an atomic add (compare-and-swap on the bit pattern), and GELU rows (f64:
//! the reference's definition; f32: a branch-free fit in f32 the compiler vectorises, compiled
//! a second time for AVX2 and FMA and chosen at run time, within 5e-7 of the reference, tested
//! below).

use crate::interp::math;
use pigeon_ir::UnaryOp;
use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A floating-point element type of the CPU executor.
pub trait Float:
    Copy
    + Send
    + Sync
    + Debug
    + Default
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + 'static
{
    /// 0.
    const ZERO: Self;
    /// -infinity.
    const NEG_INFINITY: Self;
    /// Rounds an f64.
    fn from_f64(x: f64) -> Self;
    /// Widens to f64.
    fn to_f64(self) -> f64;
    /// `e^self`.
    fn exp(self) -> Self;
    /// The larger of two values.
    fn max(self, other: Self) -> Self;
    /// `C = alpha A B + beta C` for an `m x k` A, `k x n` B and `m x n` C, each given by a
    /// pointer and (row, column) strides in elements.
    ///
    /// # Safety
    /// The pointers and strides must describe valid matrices (C writable and not overlapping
    /// A or B), as for `matrixmultiply::sgemm`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: (*const Self, isize, isize),
        b: (*const Self, isize, isize),
        beta: Self,
        c: (*mut Self, isize, isize),
    );
    /// `*p += v` atomically.
    ///
    /// # Safety
    /// `p` must be valid, aligned, and accessed concurrently only through `atomic_add`.
    unsafe fn atomic_add(p: *mut Self, v: Self);
    /// `out = gelu(x)` element-wise.
    fn gelu_rows(x: &[Self], out: &mut [Self]);
    /// `out = dy * gelu'(x)` element-wise.
    fn gelu_grad_rows(x: &[Self], dy: &[Self], out: &mut [Self]);
}

/// `Float` for a primitive float type, its sgemm/dgemm, and the atomic integer of its width.
macro_rules! impl_float {
    ($t:ident, $gemm:path, $atomic:ident, $bits:ident, $gelu:ident, $gelu_grad:ident) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const NEG_INFINITY: Self = $t::NEG_INFINITY;
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            fn to_f64(self) -> f64 {
                f64::from(self)
            }
            fn exp(self) -> Self {
                $t::exp(self)
            }
            fn max(self, other: Self) -> Self {
                $t::max(self, other)
            }
            unsafe fn gemm(
                m: usize,
                k: usize,
                n: usize,
                a: (*const Self, isize, isize),
                b: (*const Self, isize, isize),
                beta: Self,
                c: (*mut Self, isize, isize),
            ) {
                // SAFETY: forwarded from the caller's contract.
                unsafe { $gemm(m, k, n, a, b, beta, c) }
            }
            unsafe fn atomic_add(p: *mut Self, v: Self) {
                // SAFETY: the float and its atomic integer have the same size and alignment; the
                // caller guarantees that every concurrent access goes through this function.
                let cell = unsafe { $atomic::from_ptr(p.cast::<$bits>()) };
                let mut old = cell.load(Ordering::Relaxed);
                loop {
                    let new = ($t::from_bits(old) + v).to_bits();
                    match cell.compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed)
                    {
                        Ok(_) => return,
                        Err(x) => old = x,
                    }
                }
            }
            fn gelu_rows(x: &[Self], out: &mut [Self]) {
                $gelu(x, out)
            }
            fn gelu_grad_rows(x: &[Self], dy: &[Self], out: &mut [Self]) {
                $gelu_grad(x, dy, out)
            }
        }
    };
}

impl_float!(f32, super::sgemm::sgemm, AtomicU32, u32, gelu_f32, gelu_grad_f32);
impl_float!(f64, dgemm, AtomicU64, u64, gelu_f64, gelu_grad_f64);

/// matrixmultiply's dgemm with the operands as [`Float::gemm`] takes them.
///
/// # Safety
/// As for `matrixmultiply::dgemm`.
unsafe fn dgemm(
    m: usize,
    k: usize,
    n: usize,
    a: (*const f64, isize, isize),
    b: (*const f64, isize, isize),
    beta: f64,
    c: (*mut f64, isize, isize),
) {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        matrixmultiply::dgemm(m, k, n, 1.0, a.0, a.1, a.2, b.0, b.1, b.2, beta, c.0, c.1, c.2)
    }
}

/// GELU in f64: the reference interpreter's definition (Cody's erfc).
fn gelu_f64(x: &[f64], out: &mut [f64]) {
    out.iter_mut().zip(x).for_each(|(o, &v)| *o = math::gelu(v));
}

/// GELU's derivative times `dy` in f64: the reference interpreter's definition.
fn gelu_grad_f64(x: &[f64], dy: &[f64], out: &mut [f64]) {
    for ((o, &v), &d) in out.iter_mut().zip(x).zip(dy) {
        *o = math::unary_derivative(UnaryOp::Gelu, v) * d;
    }
}

/// GELU in f32 ([`phi_f32`]), eight lanes at a time where the CPU has AVX2 and FMA.
fn gelu_f32(x: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above).
        return unsafe { gelu_f32_avx2(x, out) };
    }
    gelu_f32_with::<false>(x, out)
}

/// GELU's derivative (`Phi(x) + x phi(x)`) times `dy` in f32 ([`phi_f32`]), eight lanes at a
/// time where the CPU has AVX2 and FMA.
fn gelu_grad_f32(x: &[f32], dy: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above).
        return unsafe { gelu_grad_f32_avx2(x, dy, out) };
    }
    gelu_grad_f32_with::<false>(x, dy, out)
}

/// Whether this CPU runs AVX2 and FMA instructions, detected on the first call.
#[cfg(target_arch = "x86_64")]
pub(super) fn has_avx2_fma() -> bool {
    static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DETECTED.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    })
}

/// [`gelu_f32_with`] compiled for AVX2 and FMA (the crate itself targets baseline x86-64).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_f32_avx2(x: &[f32], out: &mut [f32]) {
    gelu_f32_with::<true>(x, out)
}

/// [`gelu_grad_f32_with`] compiled for AVX2 and FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_grad_f32_avx2(x: &[f32], dy: &[f32], out: &mut [f32]) {
    gelu_grad_f32_with::<true>(x, dy, out)
}

/// `out = gelu(x)`, one branch-free loop the compiler vectorises (`FMA`: fused multiply-adds).
#[inline(always)]
fn gelu_f32_with<const FMA: bool>(x: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v * phi_f32::<FMA>(v).0;
    }
}

/// `out = dy * gelu'(x)`, one branch-free loop the compiler vectorises.
#[inline(always)]
fn gelu_grad_f32_with<const FMA: bool>(x: &[f32], dy: &[f32], out: &mut [f32]) {
    for ((o, &v), &d) in out.iter_mut().zip(x).zip(dy) {
        let (cdf, density) = phi_f32::<FMA>(v);
        *o = mul_add::<FMA>(v, density, cdf) * d;
    }
}

/// `a b + c`: fused where `FMA` (one rounding), else a product and a sum (a fused multiply-add
/// without the instruction is a slow library call).
#[inline(always)]
fn mul_add<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// The standard normal CDF and density at `x` in f32, without branches: `erfc(z)`, `z = |x| /
/// sqrt 2`, as `t e^(-z^2 + P(t))`, `t = 1 / (1 + z / 2)`, with Numerical Recipes' Chebyshev
/// fit `P` (`erfcc`, fractional error below 1.2e-7; Press et al., Numerical Recipes in C, 2nd
/// ed., 6.2). The exponent `-x^2 / 2` is kept exact as a sum of two floats (an f32 square
/// rounded at `x = -10` would already be off by 1e-5 relative), and so are the two leading
/// coefficients of `P`; [`exp_f32`] takes the exponent in parts. Measured against the f64
/// reference over `[-20, 20]` in steps of 1e-5 (the unit test below sweeps `[-14, 14]` in
/// steps of 1e-4, bound 5e-7): GELU within 4.4e-7 of its value (4.7e-7 without FMA), the
/// derivative within 4.0e-7 (4.4e-7) of `Phi(x) + |x| phi(x)`, where the reference is at
/// least 1e-36; below that (`x < -12.9`), within 3e-42 absolutely.
#[inline(always)]
#[allow(clippy::excessive_precision)]
fn phi_f32<const FMA: bool>(x: f32) -> (f32, f32) {
    // Numerical Recipes' coefficients, constant first; the first two also as f32 pairs.
    const C0: f64 = -1.265_512_23;
    const C1: f64 = 1.000_023_68;
    const C0_HI: f32 = C0 as f32;
    const C0_LO: f32 = (C0 - C0_HI as f64) as f32;
    const C1_LO: f32 = (C1 - (C1 as f32) as f64) as f32;
    const TAIL: [f32; 8] = [
        -0.822_152_23,
        1.488_515_87,
        -1.135_203_98,
        0.278_868_07,
        -0.186_288_06,
        0.096_784_18,
        0.374_091_96,
        C1 as f32,
    ];
    // Beyond 16, e^(-x^2 / 2) is 0 in f32; the clamp keeps the square finite.
    let a = x.abs().min(16.0);
    let (sq_hi, sq_lo) = square::<FMA>(a);
    let (hi, lo) = (-0.5 * sq_hi, -0.5 * sq_lo);
    let z = a * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / mul_add::<FMA>(0.5, z, 1.0);
    let mut p = 0.170_872_77_f32;
    for c in TAIL {
        p = mul_add::<FMA>(p, t, c);
    }
    let p = mul_add::<FMA>(p, t, C0_HI);
    let p_lo = mul_add::<FMA>(C1_LO, t, lo + C0_LO);
    let half_erfc = 0.5 * t * exp_f32::<FMA>(hi, p, p_lo);
    let cdf = if x >= 0.0 { 1.0 - half_erfc } else { half_erfc };
    // 1 / sqrt(2 pi).
    let density = exp_f32::<FMA>(hi, 0.0, lo) * 0.398_942_3;
    (cdf, density)
}

/// `x x` as an exact sum `hi + lo`, for `|x| <= 16` (FMA, else Veltkamp's split into 12-bit
/// halves and Dekker's product).
#[inline(always)]
fn square<const FMA: bool>(x: f32) -> (f32, f32) {
    let hi = x * x;
    if FMA {
        (hi, x.mul_add(x, -hi))
    } else {
        let c = x * 4097.0;
        let xh = c - (c - x);
        let xl = x - xh;
        (hi, ((xh * xh - hi) + 2.0 * xh * xl) + xl * xl)
    }
}

/// `e^(hi + mid + lo)` for `hi + mid` in `[-130, 2]` and a small `lo`, without branches: `2^n
/// e^r` with `n` rounded by the 1.5 * 2^23 trick, `r` reduced by Cody and Waite's two parts of
/// ln 2 (`hi - n ln2_hi` is exact, the other parts add to a small `r`), Cephes' `expf`
/// polynomial for `e^r`, and `2^n` applied as two normal powers of two (so that results down to
/// the subnormal range round once).
#[inline(always)]
#[allow(clippy::excessive_precision)]
fn exp_f32<const FMA: bool>(hi: f32, mid: f32, lo: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let k = mul_add::<FMA>(hi + mid, std::f32::consts::LOG2_E, MAGIC);
    let n = k - MAGIC;
    let r = (hi - n * LN2_HI) + mid;
    let r = mul_add::<FMA>(-n, LN2_LO, r) + lo;
    let mut p = 1.987_569_1e-4_f32;
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 5.000_000_1e-1] {
        p = mul_add::<FMA>(p, r, c);
    }
    let p = mul_add::<FMA>(p, r * r, r) + 1.0;
    let n = (k.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let (n1, n2) = (n >> 1, n - (n >> 1));
    let pow2 = |e: i32| f32::from_bits(((e + 127) as u32) << 23);
    p * pow2(n1) * pow2(n2)
}

/// Applies an activation in `T` (the cheap ones natively, the others through the reference
/// interpreter's f64 definitions, so both back ends agree on GELU and friends).
#[inline]
pub fn unary<T: Float>(op: UnaryOp, x: T) -> T {
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Relu => x.max(T::ZERO),
        UnaryOp::LeakyRelu(slope) => {
            if x > T::ZERO {
                x
            } else {
                T::from_f64(slope) * x
            }
        }
        UnaryOp::Exp => x.exp(),
        op => T::from_f64(math::unary(op, x.to_f64())),
    }
}

/// `dy * f'(x)` in `T` (the cheap derivatives natively, the others through the reference
/// interpreter's f64 definitions).
#[inline]
pub fn unary_grad<T: Float>(op: UnaryOp, x: T, dy: T) -> T {
    match op {
        UnaryOp::Neg => -dy,
        UnaryOp::Relu => {
            if x > T::ZERO {
                dy
            } else {
                T::ZERO
            }
        }
        UnaryOp::LeakyRelu(slope) => {
            if x > T::ZERO {
                dy
            } else {
                T::from_f64(slope) * dy
            }
        }
        op => T::from_f64(math::unary_derivative(op, x.to_f64())) * dy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worst errors of f32 GELU and its derivative over `xs`, against the f64 reference:
    /// relative to the value (GELU) or to `Phi(x) + |x| phi(x)` (the derivative crosses 0 near
    /// -0.75) where the reference is at least 1e-36, and absolute below.
    fn gelu_errors(
        xs: &[f32],
        gelu: impl Fn(&[f32], &mut [f32]),
        grad: impl Fn(&[f32], &[f32], &mut [f32]),
    ) -> (f64, f64, f64) {
        let dy = vec![1.0f32; xs.len()];
        let (mut y, mut g) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
        gelu(xs, &mut y);
        grad(xs, &dy, &mut g);
        let (mut rel_y, mut rel_g, mut tiny) = (0.0f64, 0.0f64, 0.0f64);
        for ((&x, &y), &g) in xs.iter().zip(&y).zip(&g) {
            let x64 = f64::from(x);
            let want = math::gelu(x64);
            let want_grad = math::unary_derivative(UnaryOp::Gelu, x64);
            let terms = math::normal_cdf(x64)
                + x64.abs() * (-0.5 * x64 * x64).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let (ey, eg) = ((f64::from(y) - want).abs(), (f64::from(g) - want_grad).abs());
            if want.abs() >= 1e-36 {
                rel_y = rel_y.max(ey / want.abs());
                rel_g = rel_g.max(eg / terms);
            } else {
                tiny = tiny.max(ey.max(eg));
            }
        }
        (rel_y, rel_g, tiny)
    }

    /// A dense sweep of [-14, 14] (steps of 1e-4, offset from round numbers).
    fn sweep() -> Vec<f32> {
        (-140_000..=140_000).map(|i| i as f32 * 1e-4 + 3.1e-6).collect()
    }

    #[test]
    fn f32_gelu_and_its_derivative_follow_the_reference() {
        // Both instantiations run on every CPU: without FMA instructions `mul_add` is exact
        // in software.
        let fused = gelu_errors(&sweep(), gelu_f32_with::<true>, gelu_grad_f32_with::<true>);
        let plain = gelu_errors(&sweep(), gelu_f32_with::<false>, gelu_grad_f32_with::<false>);
        let dispatched = gelu_errors(&sweep(), gelu_f32, gelu_grad_f32);
        for (name, (y, g, tiny)) in [("fma", fused), ("plain", plain), ("dispatched", dispatched)] {
            assert!(y <= 5e-7, "{name}: gelu off by {y:e} of its value");
            assert!(g <= 5e-7, "{name}: gelu' off by {g:e} of Phi(x) + |x| phi(x)");
            assert!(tiny <= 1e-41, "{name}: off by {tiny:e} where the reference is below 1e-36");
        }
    }

    #[test]
    fn f32_gelu_handles_extremes() {
        let xs =
            [0.0f32, -0.0, 1e-40, -1e-40, 1e-30, -30.0, 30.0, -1e30, 1e30, f32::MAX, -f32::MAX];
        let mut extremes = xs.to_vec();
        extremes.extend([f32::INFINITY, f32::NEG_INFINITY, f32::NAN]);
        let dy = vec![1.0f32; extremes.len()];
        let (mut y, mut g) = (vec![0.0; extremes.len()], vec![0.0; extremes.len()]);
        gelu_f32(&extremes, &mut y);
        gelu_grad_f32(&extremes, &dy, &mut g);
        for (i, &x) in xs.iter().enumerate() {
            let x64 = f64::from(x);
            let want = math::gelu(x64) as f32;
            let want_grad = math::unary_derivative(UnaryOp::Gelu, x64) as f32;
            assert!((y[i] - want).abs() <= 1e-6 * want.abs(), "gelu({x}) = {}, not {want}", y[i]);
            assert!((g[i] - want_grad).abs() <= 1e-6, "gelu'({x}) = {}, not {want_grad}", g[i]);
        }
        let n = xs.len();
        assert_eq!(y[n], f32::INFINITY, "gelu(inf)");
        assert!(y[n + 1] == 0.0 || y[n + 1].is_nan(), "gelu(-inf) = {}", y[n + 1]);
        assert!(y[n + 2].is_nan() && g[n + 2].is_nan(), "NaN in, NaN out");
    }
}
