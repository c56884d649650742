//! The element types the CPU executor computes in (`f32` by default, `f64` for tests), with the
//! few operations it needs: conversions, `exp`, a strided GEMM (matrixmultiply's
//! `sgemm`/`dgemm`), an atomic add (compare-and-swap on the bit pattern), and GELU rows (f64:
//! the reference's definition; f32: a branch-free fit the compiler vectorises, within 4e-7 of
//! the reference, tested below).

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
    ($t:ident, $gemm:ident, $atomic:ident, $bits:ident, $gelu:ident, $gelu_grad:ident) => {
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
                unsafe {
                    matrixmultiply::$gemm(
                        m, k, n, 1.0, a.0, a.1, a.2, b.0, b.1, b.2, beta, c.0, c.1, c.2,
                    )
                }
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

impl_float!(f32, sgemm, AtomicU32, u32, gelu_f32, gelu_grad_f32);
impl_float!(f64, dgemm, AtomicU64, u64, gelu_f64, gelu_grad_f64);

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

/// GELU in f32, through [`phi_and_density`].
fn gelu_f32(x: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        let v = f64::from(v);
        *o = (v * phi_and_density(v).0) as f32;
    }
}

/// GELU's derivative (`Phi(x) + x phi(x)`) times `dy` in f32, through [`phi_and_density`].
fn gelu_grad_f32(x: &[f32], dy: &[f32], out: &mut [f32]) {
    for ((o, &v), &d) in out.iter_mut().zip(x).zip(dy) {
        let v = f64::from(v);
        let (cdf, pdf) = phi_and_density(v);
        *o = ((cdf + v * pdf) * f64::from(d)) as f32;
    }
}

/// The standard normal CDF and density at `x`, for f32 results: `erfc` from Numerical Recipes'
/// Chebyshev fit (`erfcc`, fractional error below 1.2e-7 everywhere; Press et al., Numerical
/// Recipes in C, 2nd ed., 6.2) and [`exp_branchless`], in f64 without branches, so that a row
/// of them is one loop the compiler vectorises (the reference's Cody `erfc` branches on the
/// argument and calls `exp`).
#[inline(always)]
fn phi_and_density(x: f64) -> (f64, f64) {
    let z = x.abs() * std::f64::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.26551223
        + t * (1.00002368
            + t * (0.37409196
                + t * (0.09678418
                    + t * (-0.18628806
                        + t * (0.27886807
                            + t * (-1.13520398
                                + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let gauss = exp_branchless(-z * z);
    let erfc = t * gauss * exp_branchless(poly);
    let cdf = if x >= 0.0 { 1.0 - 0.5 * erfc } else { 0.5 * erfc };
    // 1 / sqrt(2 pi).
    let density = gauss * 0.398_942_280_401_432_7;
    (cdf, density)
}

/// `e^x` without branches or calls (relative error below 1e-9 on [-700, 700], clamped outside):
/// `2^n e^r` with `n` rounded by the 1.5 * 2^52 trick, `r` reduced in two parts of ln 2, a
/// degree-9 Taylor polynomial for `e^r` and `2^n` built from its exponent bits.
#[inline(always)]
fn exp_branchless(x: f64) -> f64 {
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let x = x.clamp(-700.0, 700.0);
    let k = x * std::f64::consts::LOG2_E + MAGIC;
    let n = k - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.0 / 362_880.0;
    for c in [40_320.0, 5_040.0, 720.0, 120.0, 24.0, 6.0, 2.0, 1.0, 1.0] {
        p = p * r + 1.0 / c;
    }
    let scale = f64::from_bits(k.to_bits().wrapping_sub(MAGIC.to_bits()).wrapping_add(1023) << 52);
    p * scale
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

    #[test]
    fn branchless_exp_is_accurate() {
        for i in -6990..=6990 {
            let x = f64::from(i) * 0.1 + 0.0123;
            let (got, want) = (exp_branchless(x), x.exp());
            assert!((got - want).abs() <= 1e-9 * want, "exp({x}): {got} vs {want}");
        }
    }

    #[test]
    fn f32_gelu_and_its_derivative_follow_the_reference() {
        let xs: Vec<f32> = (-1200..=1200).map(|i| i as f32 * 0.01 + 0.003).collect();
        let dy = vec![1.0f32; xs.len()];
        let (mut y, mut g) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
        gelu_f32(&xs, &mut y);
        gelu_grad_f32(&xs, &dy, &mut g);
        for ((&x, &y), &g) in xs.iter().zip(&y).zip(&g) {
            let x64 = f64::from(x);
            let want = math::gelu(x64);
            let want_grad = math::unary_derivative(UnaryOp::Gelu, x64);
            // f32 rounding plus the fit's 1.2e-7, relative to the value (GELU) or to the
            // terms `Phi(x)` and `|x| phi(x)` (the derivative crosses 0 near -0.75).
            let terms = math::normal_cdf(x64)
                + x64.abs() * (-0.5 * x64 * x64).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let err = |got: f32, want: f64| (f64::from(got) - want).abs();
            assert!(err(y, want) <= 4e-7 * want.abs(), "gelu({x}) = {y}, reference {want}");
            assert!(err(g, want_grad) <= 4e-7 * terms, "gelu'({x}) = {g}, reference {want_grad}");
        }
    }
}
