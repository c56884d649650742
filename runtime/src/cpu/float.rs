//! The element types the CPU executor computes in (`f32` by default, `f64` for tests), with the
//! few operations it needs: conversions, `exp`, a strided GEMM (matrixmultiply's
//! `sgemm`/`dgemm`) and an atomic add (compare-and-swap on the bit pattern).

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
}

/// `Float` for a primitive float type, its sgemm/dgemm, and the atomic integer of its width.
macro_rules! impl_float {
    ($t:ident, $gemm:ident, $atomic:ident, $bits:ident) => {
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
        }
    };
}

impl_float!(f32, sgemm, AtomicU32, u32);
impl_float!(f64, dgemm, AtomicU64, u64);

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
