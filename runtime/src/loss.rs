//! Losses on model outputs, with their gradients, and the measures reported with them:
//! softmax cross-entropy and accuracy (single-label node classification: entity and node
//! classification), sigmoid binary cross-entropy and micro-/macro-F1 (multi-label node
//! classification, as IMDB in the HGB benchmark).
//!
//! Cross-entropy is PyTorch's `F.cross_entropy(logits[nodes], labels)` with mean reduction:
//! `L = (1/n) sum_i (logsumexp(z_i) - z_i[y_i])`, computed with the row maximum subtracted so
//! that large logits do not overflow. Its gradient is `(softmax(z_i) - onehot(y_i)) / n` on the
//! labelled rows and 0 elsewhere.
//!
//! Binary cross-entropy is PyTorch's `F.binary_cross_entropy_with_logits(logits[nodes], y)`
//! with mean reduction over the `n x C` entries, `y` the 0/1 indicator of each node's classes:
//! `L = (1/nC) sum_ij (max(z, 0) - z y + ln(1 + exp(-|z|)))`, the log-sum-exp form of
//! `-(y ln sigmoid(z) + (1 - y) ln(1 - sigmoid(z)))`, finite for any finite logit. Its gradient
//! is `(sigmoid(z) - y) / nC` on the labelled rows.
//!
//! F1 is scikit-learn's `f1_score(y, z > 0, average=...)` as HGB reports it: a class is
//! predicted when its logit is positive; micro-F1 is `2TP / (2TP + FP + FN)` over all
//! (node, class) decisions, macro-F1 the mean over classes of each class's F1, a class with no
//! true and no predicted member scoring 0 (scikit-learn's `zero_division` default).

use crate::error::{Result, RuntimeError};
use crate::tensor::Tensor;

/// Labelled rows of one split: `(node, class)`.
pub type Targets = [(u32, u32)];

/// Labelled rows of one multi-label split: `(node, classes)`; the node belongs to the classes
/// listed and to no other (an empty list is a node in no class).
pub type LabelSets = [(u32, Vec<u32>)];

/// Checks that `logits` has rows of classes and that every `(node, class)` of `targets` is
/// inside it; the number of classes.
fn check(logits: &Tensor, targets: impl IntoIterator<Item = (u32, u32)>) -> Result<usize> {
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
    for (node, class) in targets {
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
    check(logits, targets.iter().copied())?;
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
    check(logits, targets.iter().copied())?;
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

fn check_sets(logits: &Tensor, targets: &LabelSets) -> Result<usize> {
    let pairs = targets.iter().flat_map(|(node, classes)| classes.iter().map(|&c| (*node, c)));
    let classes = check(logits, pairs)?;
    match targets.iter().find(|(node, _)| *node as usize >= logits.rows) {
        Some((node, _)) => Err(RuntimeError::Binding {
            name: "labels".into(),
            message: format!("labelled node {node} is outside the output's {} rows", logits.rows),
        }),
        None => Ok(classes),
    }
}

/// The 0/1 indicator row of `classes` among `n` classes.
fn indicator(classes: &[u32], n: usize) -> Vec<bool> {
    let mut y = vec![false; n];
    for &c in classes {
        y[c as usize] = true;
    }
    y
}

/// `1 / (1 + exp(-z))`, without overflow for large `|z|`.
fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// The mean sigmoid binary cross-entropy over the `nodes x classes` entries of `targets`, and
/// its gradient with respect to `logits` (0 on the rows not in `targets`). An empty `targets`
/// gives loss 0 and a zero gradient.
pub fn binary_cross_entropy(logits: &Tensor, targets: &LabelSets) -> Result<(f64, Tensor)> {
    let classes = check_sets(logits, targets)?;
    let mut grad = Tensor::zeros(logits.rows, logits.shape.clone());
    if targets.is_empty() || classes == 0 {
        return Ok((0.0, grad));
    }
    let n = (targets.len() * classes) as f64;
    let mut loss = 0.0;
    for (node, set) in targets {
        let z = logits.row(*node as usize);
        let y = indicator(set, classes);
        let g = grad.row_mut(*node as usize);
        for ((gj, &zj), &yj) in g.iter_mut().zip(z).zip(&y) {
            let yj = if yj { 1.0 } else { 0.0 };
            loss += zj.max(0.0) - zj * yj + (-zj.abs()).exp().ln_1p();
            *gj += (sigmoid(zj) - yj) / n;
        }
    }
    Ok((loss / n, grad))
}

/// Micro- and macro-averaged F1 of multi-label predictions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct F1 {
    /// `2TP / (2TP + FP + FN)` over all (node, class) decisions.
    pub micro: f64,
    /// The mean over classes of each class's F1 (0 for a class with no true and no predicted
    /// member).
    pub macro_: f64,
}

/// Micro- and macro-F1 over `targets` of the predictions `logit > 0`; `None` for an empty
/// split.
pub fn f1(logits: &Tensor, targets: &LabelSets) -> Result<Option<F1>> {
    let classes = check_sets(logits, targets)?;
    if targets.is_empty() {
        return Ok(None);
    }
    // Per class: true positives, false positives, false negatives.
    let mut counts = vec![[0u64; 3]; classes];
    for (node, set) in targets {
        let y = indicator(set, classes);
        for ((c, &z), truth) in counts.iter_mut().zip(logits.row(*node as usize)).zip(y) {
            match (z > 0.0, truth) {
                (true, true) => c[0] += 1,
                (true, false) => c[1] += 1,
                (false, true) => c[2] += 1,
                (false, false) => {}
            }
        }
    }
    let f1_of = |[tp, fp, fn_]: [u64; 3]| {
        let denominator = 2 * tp + fp + fn_;
        if denominator == 0 {
            0.0
        } else {
            (2 * tp) as f64 / denominator as f64
        }
    };
    let total = counts.iter().fold([0; 3], |a, c| [a[0] + c[0], a[1] + c[1], a[2] + c[2]]);
    let macro_ = counts.iter().map(|&c| f1_of(c)).sum::<f64>() / classes.max(1) as f64;
    Ok(Some(F1 { micro: f1_of(total), macro_ }))
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

    /// Three nodes, three classes (rows are nodes): the multi-label fixture.
    fn multi() -> (Tensor, Vec<(u32, Vec<u32>)>) {
        let z = vec![1.0, -1.0, 2.0, -1.0, 1.0, -1.0, 1.0, -1.0, -1.0];
        let t = Tensor::from_vec(3, Shape(vec![3]), z).unwrap();
        (t, vec![(0, vec![0]), (1, vec![1, 2]), (2, vec![1])])
    }

    #[test]
    fn binary_cross_entropy_against_the_direct_formula() {
        let z = vec![0.3, -1.2, 2.0, 0.0, -0.7, 1.5, 4.0, -3.0];
        let t = Tensor::from_vec(4, Shape(vec![2]), z).unwrap();
        // Node 1 is unlabelled; node 3 is in no class.
        let targets = [(0, vec![1]), (2, vec![0, 1]), (3, vec![])];
        let (loss, grad) = binary_cross_entropy(&t, &targets).unwrap();
        let y = [[0.0, 1.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]];
        let s = |x: f64| 1.0 / (1.0 + (-x).exp());
        let mut want = 0.0;
        for (node, y_node) in y.iter().enumerate().filter(|&(node, _)| node != 1) {
            for (&zj, &yj) in t.row(node).iter().zip(y_node) {
                want -= yj * s(zj).ln() + (1.0 - yj) * (1.0 - s(zj)).ln();
            }
        }
        want /= 6.0;
        assert!((loss - want).abs() < 1e-14, "{loss} != {want}");
        for (node, y_node) in y.iter().enumerate() {
            for ((&g, &zj), &yj) in grad.row(node).iter().zip(t.row(node)).zip(y_node) {
                let w = if node == 1 { 0.0 } else { (s(zj) - yj) / 6.0 };
                assert!((g - w).abs() < 1e-15, "node {node}: {g} != {w}");
            }
        }
    }

    #[test]
    fn binary_cross_entropy_gradient_matches_central_differences() {
        let (mut t, targets) = multi();
        t.data.iter_mut().enumerate().for_each(|(i, z)| *z += 0.37 * i as f64 - 1.1);
        let (_, grad) = binary_cross_entropy(&t, &targets).unwrap();
        let h = 1e-5;
        for i in 0..t.data.len() {
            let at = |d: f64| {
                let mut u = t.clone();
                u.data[i] += d;
                binary_cross_entropy(&u, &targets).unwrap().0
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            assert!((fd - grad.data[i]).abs() < 1e-9, "entry {i}: {fd} vs {}", grad.data[i]);
        }
    }

    #[test]
    fn binary_cross_entropy_of_extreme_logits_is_finite() {
        let t = Tensor::from_vec(2, Shape(vec![2]), vec![1e3, -1e3, -1e3, 1e3]).unwrap();
        // Node 0: right on both classes (loss 0); node 1 in class 0 only: wrong on both
        // (1000 each).
        let (loss, grad) = binary_cross_entropy(&t, &[(0, vec![0]), (1, vec![0])]).unwrap();
        assert!((loss - 500.0).abs() < 1e-9, "{loss}");
        let want = [0.0, 0.0, -0.25, 0.25];
        assert_eq!(grad.data, want, "{:?}", grad.data);
    }

    #[test]
    fn f1_by_hand() {
        // Predicted (logit > 0) against true sets: node 0 {0, 2} vs {0}, node 1 {1} vs {1, 2},
        // node 2 {0} vs {1}. Class 0: TP 1, FP 1, FN 0, F1 2/3; class 1: TP 1, FP 0, FN 1,
        // F1 2/3; class 2: TP 0, FP 1, FN 1, F1 0. Pooled: TP 2, FP 2, FN 2, micro-F1 4/8.
        let (t, targets) = multi();
        let f = f1(&t, &targets).unwrap().unwrap();
        assert!((f.micro - 0.5).abs() < 1e-15, "{f:?}");
        assert!((f.macro_ - 4.0 / 9.0).abs() < 1e-15, "{f:?}");
        // Node 1 alone: class 0 has no true and no predicted member (F1 0), class 1 is right,
        // class 2 is missed. Micro: TP 1, FN 1: 2/3; macro: (0 + 1 + 0) / 3.
        let f = f1(&t, &targets[1..2]).unwrap().unwrap();
        assert!((f.micro - 2.0 / 3.0).abs() < 1e-15 && (f.macro_ - 1.0 / 3.0).abs() < 1e-15);
        // A logit of exactly 0 is not a prediction: class 0 is missed (FN 1), class 1 has no
        // member (F1 0).
        let zero = Tensor::from_vec(1, Shape(vec![2]), vec![0.0, 0.0]).unwrap();
        assert_eq!(f1(&zero, &[(0, vec![0])]).unwrap(), Some(F1 { micro: 0.0, macro_: 0.0 }));
        assert_eq!(f1(&t, &[]).unwrap(), None);
    }

    #[test]
    fn bad_label_sets_are_refused() {
        let (t, _) = multi();
        let err = f1(&t, &[(0, vec![3])]).unwrap_err().to_string();
        assert!(err.contains("class 3") && err.contains("3 classes"), "{err}");
        let err = binary_cross_entropy(&t, &[(5, vec![])]).unwrap_err().to_string();
        assert!(err.contains("node 5") && err.contains("3 rows"), "{err}");
    }
}
