//! Dense f64 tables: one row per element of a domain, each row a row-major tensor of one shape.
//!
//! This is the value type of the reference interpreter, of bound inputs and of weights. A
//! [`Tensor`] with `rows` rows of shape `[h, d]` holds `rows * h * d` numbers; row `i` is the
//! contiguous slice `data[i * h * d..(i + 1) * h * d]`.

use crate::error::{Result, RuntimeError};
use pigeon_ir::Shape;

/// A table of `rows` rows, each a row-major tensor of `shape`, in f64.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Number of rows (nodes, edges, relations, ... or 1 for a shared value).
    pub rows: usize,
    /// The per-row shape.
    pub shape: Shape,
    /// `rows * shape.numel()` values, row after row.
    pub data: Vec<f64>,
}

impl Tensor {
    /// `rows` rows of zeros.
    pub fn zeros(rows: usize, shape: Shape) -> Self {
        let n = rows * shape.numel();
        Self { rows, shape, data: vec![0.0; n] }
    }

    /// `rows` rows each filled with `value`.
    pub fn full(rows: usize, shape: Shape, value: f64) -> Self {
        let n = rows * shape.numel();
        Self { rows, shape, data: vec![value; n] }
    }

    /// A single row holding the scalar `value` (shape `[]`).
    pub fn scalar(value: f64) -> Self {
        Self { rows: 1, shape: Shape::scalar(), data: vec![value] }
    }

    /// A tensor from its values; an error when `data` does not hold `rows * shape.numel()`.
    pub fn from_vec(rows: usize, shape: Shape, data: Vec<f64>) -> Result<Self> {
        let want = rows * shape.numel();
        if data.len() != want {
            return Err(RuntimeError::Internal(format!(
                "a tensor of {rows} rows of shape {shape} needs {want} values, got {}",
                data.len()
            )));
        }
        Ok(Self { rows, shape, data })
    }

    /// A tensor from f32 values (widened exactly to f64).
    pub fn from_f32(rows: usize, shape: Shape, data: &[f32]) -> Result<Self> {
        Self::from_vec(rows, shape, data.iter().map(|&x| f64::from(x)).collect())
    }

    /// The values rounded to f32 (what compiled kernels compute in).
    pub fn to_f32(&self) -> Vec<f32> {
        self.data.iter().map(|&x| x as f32).collect()
    }

    /// Number of values per row.
    pub fn row_len(&self) -> usize {
        self.shape.numel()
    }

    /// Row `i`. Panics when `i >= rows` (an interpreter bug, never a user error: callers check
    /// ids against the row count first).
    pub fn row(&self, i: usize) -> &[f64] {
        let n = self.row_len();
        &self.data[i * n..(i + 1) * n]
    }

    /// Mutable row `i`; panics like [`Tensor::row`].
    pub fn row_mut(&mut self, i: usize) -> &mut [f64] {
        let n = self.row_len();
        &mut self.data[i * n..(i + 1) * n]
    }

    /// The sum of all values (a checksum for summaries and cross-back-end comparisons).
    pub fn sum(&self) -> f64 {
        // Folding from +0.0: `Iterator::sum` starts at -0.0, so an empty tensor printed `-0`.
        self.data.iter().fold(0.0, |a, x| a + x)
    }

    /// The sum of the absolute values (a checksum insensitive to cancellation).
    pub fn sum_abs(&self) -> f64 {
        self.data.iter().fold(0.0, |a, x| a + x.abs())
    }

    /// The largest absolute difference to `other`, or `None` when rows or shapes differ.
    pub fn max_abs_diff(&self, other: &Tensor) -> Option<f64> {
        if self.rows != other.rows || self.shape != other.shape {
            return None;
        }
        Some(self.data.iter().zip(&other.data).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_checksums() {
        let t = Tensor::from_vec(2, Shape(vec![2]), vec![1.0, -2.0, 3.0, -4.0]);
        let t = match t {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(t.row(1), &[3.0, -4.0]);
        assert_eq!(t.sum(), 1.0 - 2.0 + 3.0 - 4.0);
        assert_eq!(t.sum_abs(), 1.0 + 2.0 + 3.0 + 4.0);
        assert_eq!(t.to_f32(), vec![1.0f32, -2.0, 3.0, -4.0]);
        assert!(Tensor::from_vec(2, Shape(vec![3]), vec![0.0; 5]).is_err());
        // An empty tensor sums to +0 (printed `0`, not `-0`).
        let empty = Tensor::zeros(0, Shape(vec![3]));
        assert!(empty.sum().is_sign_positive() && empty.sum_abs().is_sign_positive());
        let back = Tensor::from_f32(2, Shape(vec![2]), &t.to_f32());
        assert_eq!(back.ok(), Some(t));
    }
}
