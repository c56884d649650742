//! Allocations kept between the executions of one [`super::CpuBackend`]: a training loop runs
//! the same plans every step, and taking last step's buffers back costs nothing where fresh
//! ones cost a page fault per 4 KiB (measured: a third of an RGAT training step on AIFB).

use super::float::Float;
use std::sync::Mutex;

/// Free buffers of each element type.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    f32: Mutex<Vec<Vec<f32>>>,
    f64: Mutex<Vec<Vec<f64>>>,
}

/// The element types a [`Pool`] holds.
pub(crate) trait Pooled: Float {
    /// The free list of this type.
    fn free(pool: &Pool) -> &Mutex<Vec<Vec<Self>>>;
}

impl Pooled for f32 {
    fn free(pool: &Pool) -> &Mutex<Vec<Vec<f32>>> {
        &pool.f32
    }
}

impl Pooled for f64 {
    fn free(pool: &Pool) -> &Mutex<Vec<Vec<f64>>> {
        &pool.f64
    }
}

impl Pool {
    /// A buffer of `len` values: the smallest free one large enough, holding what its last
    /// execution left (kernels write every row of a buffer before any kernel reads it, and
    /// accumulated buffers are zeroed before their kernel: `access.rs`, `store.rs`), or a new
    /// one of zeros.
    pub fn take<T: Pooled>(&self, len: usize) -> Vec<T> {
        let found = T::free(self).lock().ok().and_then(|mut free| {
            let best = (0..free.len())
                .filter(|&i| free[i].capacity() >= len)
                .min_by_key(|&i| free[i].capacity())?;
            Some(free.swap_remove(best))
        });
        let mut v = found.unwrap_or_default();
        if cfg!(debug_assertions) {
            // Debug builds (the test suite) poison every buffer, so that a kernel reading a
            // row no kernel wrote gives NaN and fails its comparison.
            v.clear();
            v.resize(len, T::from_f64(f64::NAN));
        } else if v.len() >= len {
            v.truncate(len);
        } else {
            v.resize(len, T::ZERO);
        }
        v
    }

    /// Returns buffers for later executions.
    pub fn give<T: Pooled>(&self, buffers: impl IntoIterator<Item = Vec<T>>) {
        if let Ok(mut free) = T::free(self).lock() {
            free.extend(buffers.into_iter().filter(|v| v.capacity() > 0));
        }
    }
}
