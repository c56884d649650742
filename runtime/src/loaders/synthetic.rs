//! The `synthetic:` generator: deterministic heterogeneous multigraphs of any size, shaped like
//! real ones, for benchmarks and tests where no dataset file is at hand.
//!
//! - Node types `t0..tT` (`entity` when `T = 1`) of equal size, the first `N mod T` one larger.
//! - Relation `r` connects one type pair, drawn from the seed (always `0 -> 0` when `T = 1`).
//! - Relation sizes are Zipf-like: when `E >= R` every relation gets one edge and the other
//!   `E - R` are shared in proportion to `1 / (r + 1)` (remainders to the lowest ids); when
//!   `E < R` relations `0..E` get one edge each.
//! - Endpoints are power-law skewed on both sides: within a type of `n` nodes, rank `k` is drawn
//!   with probability about proportional to `1 / (k + 1)` (the inverse CDF of the continuous
//!   law on `[1, n + 1)`), then mapped to a node by `(k * stride + offset) mod n` with `stride`
//!   coprime to `n` and an `offset` per relation and side, so each relation has its own hubs.
//!   Multi-edges and self-loops occur, as in real graphs.
//!
//! The same parameters always give the same graph on every platform (SplitMix64 streams).

use std::fmt;

use crate::error::{Result, RuntimeError};
use crate::graph::{HeteroGraph, Relation};
use crate::rng::Rng;

/// The parameters of a synthetic graph (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyntheticParams {
    /// Number of nodes `N`.
    pub nodes: usize,
    /// Number of edges `E`.
    pub edges: usize,
    /// Number of relations `R`.
    pub relations: usize,
    /// Number of node types `T`.
    pub ntypes: usize,
    /// Random seed.
    pub seed: u64,
}

impl fmt::Display for SyntheticParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "synthetic:nodes={},edges={},relations={},ntypes={},seed={}",
            self.nodes, self.edges, self.relations, self.ntypes, self.seed
        )
    }
}

/// Generates the graph described by `p`.
pub fn generate(p: &SyntheticParams) -> Result<HeteroGraph> {
    check(p)?;
    let (n, t) = (p.nodes, p.ntypes);
    let type_offsets: Vec<usize> = (0..=t).map(|i| i * (n / t) + i.min(n % t)).collect();
    let mut pairs = Rng::for_stream(p.seed, "relation-types");
    let relations: Vec<Relation> = (0..p.relations)
        .map(|r| {
            let (s, d) = if t == 1 {
                (0, 0)
            } else {
                (pairs.below(t as u64) as u32, pairs.below(t as u64) as u32)
            };
            Relation { name: format!("r{r}"), src_type: Some(s), dst_type: Some(d) }
        })
        .collect();
    let sides: Vec<Side> =
        (0..t).map(|i| Side::new(type_offsets[i], type_offsets[i + 1] - type_offsets[i])).collect();
    let mut g = HeteroGraph {
        name: p.to_string(),
        node_types: if t == 1 {
            vec!["entity".into()]
        } else {
            (0..t).map(|i| format!("t{i}")).collect()
        },
        type_offsets,
        base_relations: relations.len(),
        src: Vec::with_capacity(p.edges),
        dst: Vec::with_capacity(p.edges),
        rel: Vec::with_capacity(p.edges),
        ..HeteroGraph::default()
    };
    let mut rng = Rng::for_stream(p.seed, "edges");
    for (r, size) in relation_sizes(p.edges, p.relations).into_iter().enumerate() {
        let (Some(s), Some(d)) = (relations[r].src_type, relations[r].dst_type) else { continue };
        let (src_side, dst_side) = (&sides[s as usize], &sides[d as usize]);
        let src_offset = rng.below(src_side.n);
        let dst_offset = rng.below(dst_side.n);
        for _ in 0..size {
            g.src.push(src_side.sample(&mut rng, src_offset));
            g.dst.push(dst_side.sample(&mut rng, dst_offset));
        }
        g.rel.resize(g.rel.len() + size, r as u32);
    }
    g.relations = relations;
    Ok(g)
}

/// Rejects parameters that describe no valid graph.
fn check(p: &SyntheticParams) -> Result<()> {
    let fail = |m: &str| Err(RuntimeError::Spec { spec: p.to_string(), message: m.into() });
    if p.ntypes == 0 {
        return fail("ntypes must be at least 1");
    }
    if p.nodes < p.ntypes {
        return fail("nodes must be at least ntypes (every node type needs a node)");
    }
    if p.nodes > u32::MAX as usize
        || p.relations > u32::MAX as usize
        || p.ntypes > u32::MAX as usize
    {
        return fail("nodes, relations and ntypes must fit 32-bit ids");
    }
    if p.edges > 0 && p.relations == 0 {
        return fail("edges need at least one relation");
    }
    if p.edges > 1 << 34 {
        return fail("more than 2^34 edges");
    }
    // Three u32 ids per edge, a type id per node (the interpreter's), and per relation and node
    // type a name, a type pair and a size: roughly 64 and 96 bytes.
    let bytes = p.edges as u128 * 12
        + p.nodes as u128 * 4
        + p.relations as u128 * 64
        + p.ntypes as u128 * 96;
    crate::memory::check(|| format!("the graph `{p}`"), bytes)
}

/// Zipf-like relation sizes summing to `edges` (see the module doc).
fn relation_sizes(edges: usize, relations: usize) -> Vec<usize> {
    if edges < relations {
        return (0..relations).map(|r| usize::from(r < edges)).collect();
    }
    let rest = edges - relations;
    let harmonic: f64 = (0..relations).map(|r| 1.0 / (r as f64 + 1.0)).sum();
    let mut sizes: Vec<usize> = (0..relations)
        .map(|r| 1 + (rest as f64 / ((r as f64 + 1.0) * harmonic)).floor() as usize)
        .collect();
    let assigned: usize = sizes.iter().sum();
    // Floors lose less than one edge per relation; float rounding could overshoot by a few.
    let mut left = edges.saturating_sub(assigned);
    for i in (0..relations).cycle().take(relations * 2) {
        if left == 0 {
            break;
        }
        sizes[i] += 1;
        left -= 1;
    }
    let mut over = sizes.iter().sum::<usize>().saturating_sub(edges);
    for s in &mut sizes {
        let take = over.min(s.saturating_sub(1));
        *s -= take;
        over -= take;
    }
    sizes
}

/// Power-law sampling of one node type's ids.
struct Side {
    start: u64,
    n: u64,
    /// `ln(n + 1)`.
    log_n: f64,
    /// Coprime to `n`, so that `k -> (k * stride + offset) mod n` is a permutation.
    stride: u64,
}

impl Side {
    fn new(start: usize, n: usize) -> Self {
        let n = n as u64;
        let mut stride = 0x9e37_79b1 % n.max(1);
        while n > 1 && gcd(stride, n) != 1 {
            stride += 1;
        }
        Self { start: start as u64, n, log_n: ((n + 1) as f64).ln(), stride: stride.max(1) }
    }
    fn sample(&self, rng: &mut Rng, offset: u64) -> u32 {
        let x = (rng.next_f64() * self.log_n).exp();
        let rank = (x as u64).saturating_sub(1).min(self.n - 1);
        // rank, stride < n <= 2^32, so the product fits 64 bits.
        (self.start + (rank * self.stride + offset) % self.n) as u32
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::{gcd, relation_sizes};

    #[test]
    fn sizes_sum_and_decrease() {
        for (e, r) in [(0, 3), (2, 5), (5, 5), (100, 7), (5_668_682, 108), (1, 1)] {
            let s = relation_sizes(e, r);
            assert_eq!(s.len(), r);
            assert_eq!(s.iter().sum::<usize>(), e, "{e} {r}");
            assert!(s.windows(2).all(|w| w[0] >= w[1]), "{s:?}");
        }
        // 100 edges, 3 relations: 1 each, then 97 / (11/6) x (1, 1/2, 1/3) = 52.9, 26.5, 17.6
        // floored to 52, 26, 17; the 2 left over go to relations 0 and 1.
        assert_eq!(relation_sizes(100, 3), vec![54, 28, 18]);
        assert_eq!(gcd(12, 18), 6);
    }
}
