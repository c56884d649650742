//! Losses on model outputs, with their gradients: softmax cross-entropy over labelled nodes
//! (entity and node classification), and accuracy.
//!
//! Cross-entropy is PyTorch's `F.cross_entropy(logits[nodes], labels)` with mean reduction:
//! `L = (1/n) sum_i (logsumexp(z_i) - z_i[y_i])`, computed with the row maximum subtracted so
//! that large logits do not overflow. Its gradient is `(softmax(z_i) - onehot(y_i)) / n` on the
//! labelled rows and 0 elsewhere.

use crate::error::{Result, RuntimeError};
use crate::tensor::Tensor;

/// Labelled rows of one split: `(node, class)`.
pub type Targets = [(u32, u32)];

fn check(logits: &Tensor, targets: &Targets) -> Result<usize> {
    let classes = logits.row_len();
    if logits.shape.rank() != 1 {
        return Err(RuntimeError::Binding {
            name: "logits".into(),
            message: format!(
                "a classifier output needs rows of shape [classes], got {}",
                logits.shape
            ),
        });
    }
    for &(node, class) in targets {
        if node as usize >= logits.rows || class as usize >= classes {
            return Err(RuntimeError::Binding {
                name: "labels".into(),
                message: format!(
                    "label (node {node}, class {class}) is outside the output's {} rows of {classes} classes",
                    logits.rows
                ),
            });
        }
    }
    Ok(classes)
}

/// `log(sum_j exp(z_j))`, stably.
fn logsumexp(z: &[f64]) -> f64 {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + z.iter().map(|&x| (x - m).exp()).sum::<f64>().ln()
}

/// The mean cross-entropy over `targets`, and its gradient with respect to `logits` (0 on the
/// rows not in `targets`). An empty `targets` gives loss 0 and a zero gradient.
pub fn cross_entropy(logits: &Tensor, targets: &Targets) -> Result<(f64, Tensor)> {
    check(logits, targets)?;
    let mut grad = Tensor::zeros(logits.rows, logits.shape.clone());
    if targets.is_empty() {
        return Ok((0.0, grad));
    }
    let n = targets.len() as f64;
    let mut loss = 0.0;
    for &(node, class) in targets {
        let z = logits.row(node as usize);
        let lse = logsumexp(z);
        loss += lse - z[class as usize];
        let g = grad.row_mut(node as usize);
        for (gj, &zj) in g.iter_mut().zip(z) {
            *gj += (zj - lse).exp() / n;
        }
        g[class as usize] -= 1.0 / n;
    }
    Ok((loss / n, grad))
}

/// The fraction of `targets` whose largest logit is their class (the first largest on ties);
/// `None` for an empty split.
pub fn accuracy(logits: &Tensor, targets: &Targets) -> Result<Option<f64>> {
    check(logits, targets)?;
    if targets.is_empty() {
        return Ok(None);
    }
    let hits = targets
        .iter()
        .filter(|&&(node, class)| argmax(logits.row(node as usize)) == class as usize)
        .count();
    Ok(Some(hits as f64 / targets.len() as f64))
}

fn argmax(z: &[f64]) -> usize {
    let mut best = 0;
    for (j, &x) in z.iter().enumerate() {
        if x > z[best] {
            best = j;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use pigeon_ir::Shape;

    fn logits() -> Tensor {
        Tensor::from_vec(3, Shape(vec![2]), vec![0.0, 0.0, 2.0, 0.0, 1.0, 3.0]).unwrap()
    }

    #[test]
    fn cross_entropy_by_hand() {
        // Node 0: logits (0, 0), class 0: ln 2. Node 2: logits (1, 3), class 1:
        // ln(e + e^3) - 3 = ln(1 + e^-2).
        let (loss, grad) = cross_entropy(&logits(), &[(0, 0), (2, 1)]).unwrap();
        let want = (2f64.ln() + (1.0 + (-2f64).exp()).ln()) / 2.0;
        assert!((loss - want).abs() < 1e-15, "{loss} != {want}");
        // d/dz for node 0: (0.5 - 1, 0.5) / 2; node 1 is unlabelled; node 2: (s0, s1 - 1) / 2
        // with s0 = 1 / (1 + e^2).
        let s0 = 1.0 / (1.0 + 2f64.exp());
        let want = [-0.25, 0.25, 0.0, 0.0, s0 / 2.0, (1.0 - s0 - 1.0) / 2.0];
        for (g, w) in grad.data.iter().zip(want) {
            assert!((g - w).abs() < 1e-15, "{:?}", grad.data);
        }
    }

    #[test]
    fn large_logits_do_not_overflow() {
        let t = Tensor::from_vec(1, Shape(vec![2]), vec![1000.0, 0.0]).unwrap();
        let (loss, grad) = cross_entropy(&t, &[(0, 1)]).unwrap();
        assert!((loss - 1000.0).abs() < 1e-9 && grad.data.iter().all(|g| g.is_finite()));
    }

    #[test]
    fn accuracy_and_bad_labels() {
        assert_eq!(accuracy(&logits(), &[(0, 0), (1, 0), (2, 0)]).unwrap(), Some(2.0 / 3.0));
        assert_eq!(accuracy(&logits(), &[]).unwrap(), None);
        let err = cross_entropy(&logits(), &[(3, 0)]).unwrap_err().to_string();
        assert!(err.contains("node 3") && err.contains("3 rows"), "{err}");
        assert!(cross_entropy(&logits(), &[(0, 2)]).is_err());
    }
}
