//! Shape rules shared by the frontend's checker, the lowering and the IR verifier.
//!
//! Broadcasting aligns axes from the *front* (heads first): the shorter shape is padded with
//! trailing 1s, then each axis must be equal or 1. So a per-head score `[h]` times per-head
//! messages `[h, d]` gives `[h, d]`, and a scalar broadcasts against anything.

use crate::inter::Shape;

/// The result shape of an element-wise binary operation, or `None` when the shapes do not
/// broadcast.
pub fn broadcast(a: &Shape, b: &Shape) -> Option<Shape> {
    let n = a.rank().max(b.rank());
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let x = a.0.get(i).copied().unwrap_or(1);
        let y = b.0.get(i).copied().unwrap_or(1);
        if x == y || y == 1 {
            out.push(x);
        } else if x == 1 {
            out.push(y);
        } else {
            return None;
        }
    }
    Some(Shape(out))
}

/// Strides of row-major `shape` as if padded to rank `rank` with trailing 1s; axes of extent 1
/// get stride 0, so that indexing with the broadcast result's coordinates reads the right element.
pub fn broadcast_strides(shape: &Shape, rank: usize) -> Vec<usize> {
    let mut dims = shape.0.clone();
    dims.resize(rank, 1);
    let mut strides = vec![0; rank];
    let mut acc = 1;
    for i in (0..rank).rev() {
        strides[i] = if dims[i] == 1 { 0 } else { acc };
        acc *= dims[i];
    }
    strides
}

/// How a typed linear contracts its operands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinearForm {
    /// `[K] x [K, N..] -> [N..]`.
    Plain {
        /// Contracted extent.
        k: usize,
        /// Output elements per row (product of `N..`).
        n: usize,
    },
    /// `[B.., K] x [B.., K, N] -> [B.., N]`: a separate matrix per leading index (per head).
    Batched {
        /// Number of batches (product of `B..`).
        batch: usize,
        /// Contracted extent.
        k: usize,
        /// Output width.
        n: usize,
    },
    /// `[B.., K] x [K, N] -> [B.., N]`: the same matrix for every leading index.
    Broadcast {
        /// Number of batches (product of `B..`).
        batch: usize,
        /// Contracted extent.
        k: usize,
        /// Output width.
        n: usize,
    },
}

/// The output shape and contraction form of `x @ w`, or `None` when they do not fit.
pub fn linear(x: &Shape, w: &Shape) -> Option<(Shape, LinearForm)> {
    let xd = x.dims();
    let wd = w.dims();
    if xd.is_empty() || wd.is_empty() {
        return None;
    }
    let k = xd[xd.len() - 1];
    if xd.len() == 1 && wd[0] == k {
        let out = Shape(wd[1..].to_vec());
        let n = out.numel();
        return Some((out, LinearForm::Plain { k, n }));
    }
    let lead = &xd[..xd.len() - 1];
    let batch: usize = lead.iter().product();
    if wd.len() == xd.len() + 1 && &wd[..lead.len()] == lead && wd[lead.len()] == k {
        let n = wd[wd.len() - 1];
        let mut out = lead.to_vec();
        out.push(n);
        return Some((Shape(out), LinearForm::Batched { batch, k, n }));
    }
    if wd.len() == 2 && wd[0] == k {
        let n = wd[1];
        let mut out = lead.to_vec();
        out.push(n);
        return Some((Shape(out), LinearForm::Broadcast { batch, k, n }));
    }
    None
}

/// The output shape of `dot(a, b)`: the operands broadcast, then the last axis is summed.
pub fn dot(a: &Shape, b: &Shape) -> Option<Shape> {
    if a.rank() == 0 || b.rank() == 0 {
        return None;
    }
    // The contracted axis must match exactly; leading axes broadcast.
    if a.0[a.rank() - 1] != b.0[b.rank() - 1] {
        return None;
    }
    let la = Shape(a.0[..a.rank() - 1].to_vec());
    let lb = Shape(b.0[..b.rank() - 1].to_vec());
    if la.rank() != lb.rank() && la.rank() != 0 && lb.rank() != 0 {
        return None;
    }
    broadcast(&la, &lb)
}

/// The output shape of concatenating along the last axis.
pub fn concat(parts: &[&Shape]) -> Option<Shape> {
    let first = parts.first()?;
    if first.rank() == 0 {
        return None;
    }
    let lead = &first.0[..first.rank() - 1];
    let mut last = 0;
    for p in parts {
        if p.rank() != first.rank() || &p.0[..p.rank() - 1] != lead {
            return None;
        }
        last += p.0[p.rank() - 1];
    }
    let mut out = lead.to_vec();
    out.push(last);
    Some(Shape(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(d: &[usize]) -> Shape {
        Shape(d.to_vec())
    }

    #[test]
    fn broadcast_aligns_from_the_front() {
        assert_eq!(broadcast(&s(&[4]), &s(&[4, 8])), Some(s(&[4, 8])));
        assert_eq!(broadcast(&s(&[]), &s(&[4, 8])), Some(s(&[4, 8])));
        assert_eq!(broadcast(&s(&[4, 1]), &s(&[1, 8])), Some(s(&[4, 8])));
        assert_eq!(broadcast(&s(&[8]), &s(&[4, 8])), None);
    }

    #[test]
    fn linear_forms() {
        assert_eq!(linear(&s(&[16]), &s(&[16, 2, 8])).map(|r| r.0), Some(s(&[2, 8])));
        assert_eq!(
            linear(&s(&[2, 8]), &s(&[2, 8, 4])),
            Some((s(&[2, 4]), LinearForm::Batched { batch: 2, k: 8, n: 4 }))
        );
        assert_eq!(
            linear(&s(&[2, 8]), &s(&[8, 4])),
            Some((s(&[2, 4]), LinearForm::Broadcast { batch: 2, k: 8, n: 4 }))
        );
        assert_eq!(linear(&s(&[16]), &s(&[8, 4])), None);
        assert_eq!(linear(&s(&[]), &s(&[8, 4])), None);
    }

    #[test]
    fn dot_and_concat() {
        assert_eq!(dot(&s(&[2, 8]), &s(&[2, 8])), Some(s(&[2])));
        assert_eq!(dot(&s(&[8]), &s(&[8])), Some(s(&[])));
        assert_eq!(dot(&s(&[8]), &s(&[4])), None);
        assert_eq!(concat(&[&s(&[2, 3]), &s(&[2, 5])]), Some(s(&[2, 8])));
        assert_eq!(concat(&[&s(&[2, 3]), &s(&[3, 5])]), None);
    }
}
