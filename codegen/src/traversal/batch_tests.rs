//! Tests of the batched edge loops: host simulations of the lane arithmetic the generated code
//! performs (which lane holds which edge, per-lane online softmax statistics and partial sums
//! merged across the group, fetching rows ahead in a batch) checked against direct sequential
//! computation; and the statement modes of RGAT and HGT checked by hand.

use super::batch::unroll_for;
use super::modes::{modes, Mode};
use super::regs;
use super::tests::{node_parallel, plan};

/// Degrees that exercise empty nodes, single edges, partial and exact batches.
const DEGREES: &[usize] = &[0, 1, 2, 3, 31, 32, 33, 64, 95, 100];
const GROUPS: &[usize] = &[1, 2, 4, 32];

fn scores(n: usize) -> Vec<f32> {
    (0..n).map(|k| ((k * 37 % 23) as f32 - 11.0) * 0.37).collect()
}

/// The generated loop: lane `l` of batch `j0` holds edge `min(j0 + l, end - 1)` and
/// accumulates only when `j0 + l < end`; returns each lane's (max, denominator, sum) of the
/// edge scores `x` and which edges each lane accumulated.
fn lane_partials(g: usize, x: &[f32]) -> (Vec<(f32, f32, f32)>, Vec<usize>) {
    let (begin, end) = (0, x.len());
    let mut lanes = vec![(f32::NEG_INFINITY, 0.0f32, 0.0f32); g];
    let mut seen = vec![0usize; end];
    let mut j0 = begin;
    while j0 < end {
        for (l, (m, d, sum)) in lanes.iter_mut().enumerate() {
            let j = j0 + l;
            let e = if j < end { j } else { end - 1 };
            let xv = x[e];
            if j < end {
                let mx = m.max(xv);
                *d = *d * (*m - mx).exp() + (xv - mx).exp();
                *m = mx;
                *sum += xv;
                seen[e] += 1;
            }
        }
        j0 += g;
    }
    (lanes, seen)
}

/// The merge after the loop (`reduce::merge`): `m = max m_l`, `d = sum d_l exp(m_l - m)` with
/// lanes that saw nothing adding 0, `sum = sum sum_l`.
fn merge(lanes: &[(f32, f32, f32)]) -> (f32, f32, f32) {
    let m = lanes.iter().fold(f32::NEG_INFINITY, |a, l| a.max(l.0));
    let d = lanes
        .iter()
        .map(|&(ml, dl, _)| if ml == f32::NEG_INFINITY { 0.0 } else { dl * (ml - m).exp() })
        .sum();
    let s = lanes.iter().map(|l| l.2).sum();
    (m, d, s)
}

#[test]
fn merged_lane_softmax_statistics_equal_the_sequential_ones() {
    for &g in GROUPS {
        for &n in DEGREES {
            let x = scores(n);
            let (lanes, seen) = lane_partials(g, &x);
            assert!(seen.iter().all(|&c| c == 1), "g={g} n={n}: every edge exactly once");
            let (m, d, s) = merge(&lanes);
            if n == 0 {
                // No edge: (-inf, 0) and a zero sum, never NaN.
                assert_eq!((m, d, s), (f32::NEG_INFINITY, 0.0, 0.0));
                continue;
            }
            let want_m = x.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
            let want_d: f32 = x.iter().map(|&v| (v - want_m).exp()).sum();
            let want_s: f32 = x.iter().sum();
            assert_eq!(m, want_m, "g={g} n={n}");
            assert!((d - want_d).abs() <= 1e-5 * want_d, "g={g} n={n}: {d} vs {want_d}");
            assert!((s - want_s).abs() <= 1e-4 * (1.0 + want_s.abs()), "g={g} n={n}");
            // The softmax values then sum to one.
            let total: f32 = x.iter().map(|&v| (v - m).exp() / d).sum();
            assert!((total - 1.0).abs() < 1e-5, "g={g} n={n}: {total}");
        }
    }
}

#[test]
fn fetching_ahead_visits_every_edge_of_a_batch_once_and_stays_in_bounds() {
    for &g in GROUPS {
        for &n_edges in DEGREES {
            for u in [1usize, 2, 4] {
                let mut visits = vec![0usize; n_edges];
                let mut j0 = 0;
                while j0 < n_edges {
                    let n = (n_edges - j0).min(g);
                    let mut t0 = 0;
                    while t0 < n {
                        // Fetch: lane index min(t0 + u, n - 1) is a lane holding an edge.
                        for k in 0..u {
                            let t = (t0 + k).min(n - 1);
                            assert!(t < n && j0 + t < n_edges);
                        }
                        // Compute: edges t0 + k while below n.
                        for k in 0..u {
                            let t = t0 + k;
                            if t >= n {
                                break;
                            }
                            visits[j0 + t] += 1;
                        }
                        t0 += u;
                    }
                    j0 += g;
                }
                assert!(visits.iter().all(|&c| c == 1), "g={g} n={n_edges} u={u}");
            }
        }
    }
}

#[test]
fn rows_are_fetched_four_or_two_edges_ahead_when_they_fit() {
    // At most 16 registers of fetched rows (32 spill in RGAT with 4 rows of 64 per edge).
    assert_eq!(unroll_for(2), 4);
    assert_eq!(unroll_for(4), 4);
    assert_eq!(unroll_for(5), 2);
    assert_eq!(unroll_for(8), 2);
    assert_eq!(unroll_for(9), 1);
    assert_eq!(unroll_for(0), 1);
}

fn modes_of(model: &str) -> Vec<Mode> {
    let p = plan(model, pigeon_passes::Options::default(), Some(1));
    let Ok(p) = p else { panic!("no {model} plan") };
    let Some(t) = node_parallel(&p) else { panic!("no {model} node-parallel kernel") };
    let Ok(regs) = regs::analyze(&p, &t) else { panic!("{model}: registers") };
    modes(&p, &t, &regs)
}

#[test]
fn rgat_scores_and_softmax_are_lane_statements() {
    use Mode::*;
    // r0..r3 score, r4 softmax, r5 [1, 64] load, r6 = r4 * r5, r7 aggregate, r8.. node.
    assert_eq!(
        modes_of("rgat"),
        vec![Lane, Lane, Lane, Lane, Lane, Seq, Seq, Node, Node, Node, Node, Node]
    );
}

#[test]
fn hgt_destination_and_single_row_loads_are_invariant() {
    use Mode::*;
    // r0 load dst [1, 64], r1 load compact.src, r2 dot, r3 load by relation [1], r4 mul,
    // r5 load of a one-row buffer, r6 div, r7 softmax, r8 load, r9 mul, r10.. node.
    assert_eq!(
        modes_of("hgt"),
        vec![Invariant, Seq, Seq, Lane, Seq, Invariant, Seq, Seq, Seq, Seq, Node, Node, Node, Node]
    );
}
