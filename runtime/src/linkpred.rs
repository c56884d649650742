//! Link prediction on knowledge graphs with the DistMult decoder (Yang et al. 2015, as the R-GCN
//! paper's link-prediction model uses it): `score(h, r, t) = sum_k e_h[k] R_r[k] e_t[k]` over
//! node embeddings `e` (the encoder's output) and one diagonal relation vector `R_r` per base
//! relation.
//!
//! Training: binary cross-entropy with logits over positive triples and negatives made by
//! replacing the head or the tail (a fair coin) with a uniformly random entity, mean over all
//! scored triples. Evaluation: the filtered ranking protocol of Bordes et al. (2013): for each test
//! triple, all entities replace the tail (and, separately, the head); candidates forming a known
//! triple (train, valid or test) other than the test triple itself are skipped; the rank is one
//! plus the number of remaining candidates scoring strictly higher plus half of those scoring
//! the same (the mean of the optimistic and pessimistic ranks, so that a model scoring every
//! triple alike ranks in the middle, not first). Reported: the mean reciprocal rank and
//! Hits@1, 3, 10 over both directions.

use crate::error::{Result, RuntimeError};
use crate::rng::Rng;
use crate::tensor::Tensor;
use std::collections::HashSet;

/// A triple `(head, relation, tail)`.
pub type Triple = (u32, u32, u32);

fn score(e: &Tensor, rel: &Tensor, (h, r, t): Triple) -> f64 {
    let (eh, rr, et) = (e.row(h as usize), rel.row(r as usize), e.row(t as usize));
    eh.iter().zip(rr).zip(et).map(|((a, b), c)| a * b * c).sum()
}

fn check(e: &Tensor, rel: &Tensor, triples: &[Triple]) -> Result<()> {
    if e.row_len() != rel.row_len() {
        return Err(RuntimeError::Internal(format!(
            "embeddings of width {} and relation vectors of width {} differ",
            e.row_len(),
            rel.row_len()
        )));
    }
    if let Some(&(h, r, t)) = triples
        .iter()
        .find(|&&(h, r, t)| h as usize >= e.rows || t as usize >= e.rows || r as usize >= rel.rows)
    {
        return Err(RuntimeError::InvalidGraph(format!(
            "triple ({h}, {r}, {t}) is outside {} entities and {} relations",
            e.rows, rel.rows
        )));
    }
    Ok(())
}

/// `log(1 + exp(x))`, stably.
fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `negatives` corruptions of each positive triple, drawn from `rng`.
pub fn corrupt(
    positives: &[Triple],
    entities: usize,
    negatives: usize,
    rng: &mut Rng,
) -> Vec<Triple> {
    let mut out = Vec::with_capacity(positives.len() * negatives);
    for &(h, r, t) in positives {
        for _ in 0..negatives {
            let other = rng.below(entities as u64) as u32;
            out.push(if rng.below(2) == 0 { (other, r, t) } else { (h, r, other) });
        }
    }
    out
}

/// The mean binary cross-entropy of `positives` (label 1) and `negatives` (label 0), and its
/// gradients with respect to the embeddings and the relation vectors.
pub fn bce_loss(
    e: &Tensor,
    rel: &Tensor,
    positives: &[Triple],
    negatives: &[Triple],
) -> Result<(f64, Tensor, Tensor)> {
    check(e, rel, positives)?;
    check(e, rel, negatives)?;
    let mut de = Tensor::zeros(e.rows, e.shape.clone());
    let mut dr = Tensor::zeros(rel.rows, rel.shape.clone());
    let n = (positives.len() + negatives.len()).max(1) as f64;
    let mut loss = 0.0;
    let labelled = positives.iter().map(|t| (t, 1.0)).chain(negatives.iter().map(|t| (t, 0.0)));
    for (&(h, r, t), y) in labelled {
        let s = score(e, rel, (h, r, t));
        loss += if y > 0.5 { softplus(-s) } else { softplus(s) };
        let g = (sigmoid(s) - y) / n;
        let width = e.row_len();
        for k in 0..width {
            let (eh, rr, et) = (e.row(h as usize)[k], rel.row(r as usize)[k], e.row(t as usize)[k]);
            de.row_mut(h as usize)[k] += g * rr * et;
            de.row_mut(t as usize)[k] += g * rr * eh;
            dr.row_mut(r as usize)[k] += g * eh * et;
        }
    }
    Ok((loss / n, de, dr))
}

/// Filtered ranking metrics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ranking {
    /// Mean reciprocal rank.
    pub mrr: f64,
    /// Fraction ranked first.
    pub hits1: f64,
    /// Fraction ranked in the top 3.
    pub hits3: f64,
    /// Fraction ranked in the top 10.
    pub hits10: f64,
    /// Number of ranks (two per test triple).
    pub count: usize,
}

/// The filtered rank of the true tail (or head) of `(h, r, t)` among all entities.
fn rank(
    e: &Tensor,
    rel: &Tensor,
    (h, r, t): Triple,
    corrupt_tail: bool,
    known: &HashSet<Triple>,
) -> f64 {
    // The fixed side times the relation, then one dot product per candidate.
    let fixed = if corrupt_tail { h } else { t };
    let hr: Vec<f64> =
        e.row(fixed as usize).iter().zip(rel.row(r as usize)).map(|(a, b)| a * b).collect();
    let truth = if corrupt_tail { t } else { h };
    let dot = |c: usize| -> f64 { hr.iter().zip(e.row(c)).map(|(a, b)| a * b).sum() };
    let target = dot(truth as usize);
    let (mut higher, mut ties) = (0usize, 0usize);
    for c in 0..e.rows {
        let score = dot(c);
        if c as u32 == truth || score < target {
            continue;
        }
        let triple = if corrupt_tail { (h, r, c as u32) } else { (c as u32, r, t) };
        if !known.contains(&triple) {
            if score > target {
                higher += 1;
            } else {
                ties += 1;
            }
        }
    }
    1.0 + higher as f64 + ties as f64 / 2.0
}

/// Filtered MRR and Hits@k of `queries` (see the module doc); `known` holds every true triple.
pub fn filtered_ranking(
    e: &Tensor,
    rel: &Tensor,
    queries: &[Triple],
    known: &HashSet<Triple>,
) -> Result<Ranking> {
    check(e, rel, queries)?;
    use rayon::prelude::*;
    let ranks: Vec<f64> = queries
        .par_iter()
        .flat_map_iter(|&q| [true, false].map(|corrupt_tail| rank(e, rel, q, corrupt_tail, known)))
        .collect();
    let count = ranks.len();
    let frac = |k: f64| ranks.iter().filter(|&&x| x <= k).count() as f64 / count.max(1) as f64;
    let mrr = ranks.iter().map(|&x| 1.0 / x).sum::<f64>() / count.max(1) as f64;
    Ok(Ranking { mrr, hits1: frac(1.0), hits3: frac(3.0), hits10: frac(10.0), count })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pigeon_ir::Shape;

    fn t(rows: usize, w: usize, data: &[f64]) -> Tensor {
        Tensor::from_vec(rows, Shape(vec![w]), data.to_vec()).unwrap()
    }

    #[test]
    fn loss_and_gradients_by_hand() {
        // Two entities of width 1: e = (1, 2); one relation r = 0.5.
        // Positive (0, 0, 1): s = 1 * 0.5 * 2 = 1, loss softplus(-1).
        // Negative (1, 0, 1): s = 2 * 0.5 * 2 = 2, loss softplus(2).
        let (e, r) = (t(2, 1, &[1.0, 2.0]), t(1, 1, &[0.5]));
        let (loss, de, dr) = bce_loss(&e, &r, &[(0, 0, 1)], &[(1, 0, 1)]).unwrap();
        let sp = |x: f64| (1.0 + x.exp()).ln();
        assert!((loss - (sp(-1.0) + sp(2.0)) / 2.0).abs() < 1e-14);
        let sg = |x: f64| 1.0 / (1.0 + (-x).exp());
        let (g1, g2) = ((sg(1.0) - 1.0) / 2.0, sg(2.0) / 2.0);
        // d e0 = g1 * r * e1; d e1 = g1 * r * e0 + 2 * g2 * r * e1 (head and tail of the negative).
        assert!((de.data[0] - g1 * 0.5 * 2.0).abs() < 1e-14);
        assert!((de.data[1] - (g1 * 0.5 + 2.0 * g2 * 0.5 * 2.0)).abs() < 1e-14);
        assert!((dr.data[0] - (g1 * 2.0 + g2 * 4.0)).abs() < 1e-14);
    }

    #[test]
    fn filtered_ranks_skip_known_triples() {
        // Width 1, r = 1: score(h, t) = e_h * e_t. Entities 0..4 with e = (1, 4, 3, 2).
        // Query (0, 0, 2): tails by score: 1 (4), 2 (3), 3 (2), 0 (1) -> raw rank 2 for tail 2;
        // (0, 0, 1) is known, so the filtered rank is 1. Heads for tail 2: 1 (12), 2 (9),
        // 3 (6), 0 (3) -> raw rank 4, and (1, 0, 2) known -> 3.
        let (e, r) = (t(4, 1, &[1.0, 4.0, 3.0, 2.0]), t(1, 1, &[1.0]));
        let known: HashSet<Triple> = [(0, 0, 1), (1, 0, 2), (0, 0, 2)].into_iter().collect();
        let m = filtered_ranking(&e, &r, &[(0, 0, 2)], &known).unwrap();
        assert_eq!(m.count, 2);
        assert!((m.mrr - (1.0 + 1.0 / 3.0) / 2.0).abs() < 1e-15, "{m:?}");
        assert_eq!((m.hits1, m.hits3, m.hits10), (0.5, 1.0, 1.0));
    }

    #[test]
    fn ties_rank_in_the_middle() {
        // All scores 0: of the 5 candidates besides the truth, one forms a known triple, so 4
        // tie with it: rank 1 + 4 / 2 = 3 in both directions.
        let (e, r) = (t(6, 2, &[0.0; 12]), t(1, 2, &[1.0, 1.0]));
        let known: HashSet<Triple> = [(0, 0, 1), (0, 0, 2), (3, 0, 1)].into_iter().collect();
        let m = filtered_ranking(&e, &r, &[(0, 0, 1)], &known).unwrap();
        assert!((m.mrr - 1.0 / 3.0).abs() < 1e-15, "{m:?}");
        assert_eq!((m.hits1, m.hits3, m.hits10), (0.0, 1.0, 1.0));
    }

    #[test]
    fn corruptions_keep_the_relation_and_one_end() {
        let pos = [(0, 1, 2), (3, 0, 4)];
        let neg = corrupt(&pos, 5, 50, &mut Rng::new(1));
        assert_eq!(neg.len(), 100);
        let (mut heads, mut tails) = (0, 0);
        for (i, &(h, r, t)) in neg.iter().enumerate() {
            let (ph, pr, pt) = pos[i / 50];
            assert_eq!(r, pr);
            assert!(h < 5 && t < 5);
            assert!(h == ph || t == pt, "{:?} from {:?}", (h, r, t), pos[i / 50]);
            heads += usize::from(t == pt && h != ph);
            tails += usize::from(h == ph && t != pt);
        }
        // Both sides get corrupted (a fair coin, so each about 40 of 100 times here).
        assert!(heads > 20 && tails > 20, "{heads} heads, {tails} tails");
    }

    #[test]
    fn out_of_range_triples_are_errors() {
        let (e, r) = (t(2, 1, &[1.0, 2.0]), t(1, 1, &[0.5]));
        assert!(bce_loss(&e, &r, &[(0, 1, 1)], &[]).is_err());
        assert!(filtered_ranking(&e, &r, &[(2, 0, 0)], &HashSet::new()).is_err());
    }
}
