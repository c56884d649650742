//! The `triples:` loader: knowledge graphs as `train.txt` / `valid.txt` / `test.txt`, one
//! `head<TAB>relation<TAB>tail` per line (FB15k-237, WN18RR, the ConvE `nations`, `umls`,
//! `kinship` sets).
//!
//! Entity and relation ids are given in order of first appearance over train, then valid, then
//! test, so that every entity of the evaluation splits exists in the graph (FB15k-237 has 14,505
//! entities in train but 14,541 in all; WN18RR 40,559 and 40,943). The graph's edges are the
//! training triples only; all three splits are kept in [`LinkSplits`]. One node type `entity`;
//! names kept in `node_names`. Blank lines are skipped; a missing `valid.txt` or `test.txt` gives
//! an empty split, a missing `train.txt` an error.

use std::path::Path;

use super::{fields, for_each_line, open, parse_error, Interner};
use crate::error::Result;
use crate::graph::{HeteroGraph, LinkSplits, Relation};

/// Loads a knowledge graph from a directory of `train.txt`, `valid.txt`, `test.txt`.
pub fn load_triples(dir: &Path) -> Result<HeteroGraph> {
    let mut entities = Interner::default();
    let mut relations = Interner::default();
    let mut splits = LinkSplits::default();
    for (name, split) in [
        ("train.txt", &mut splits.train),
        ("valid.txt", &mut splits.valid),
        ("test.txt", &mut splits.test),
    ] {
        let path = dir.join(name);
        if name != "train.txt" && !path.exists() {
            continue;
        }
        for_each_line(&path, open(&path)?, |line, text| {
            if text.trim().is_empty() {
                return Ok(());
            }
            let cols = fields(&path, line, text, 3, "head, relation, tail")?;
            let too_many = || parse_error(&path, line, "more than 2^32 distinct names");
            let (h, r, t) = (cols[0].trim(), cols[1].trim(), cols[2].trim());
            if h.is_empty() || r.is_empty() || t.is_empty() {
                return Err(parse_error(&path, line, "empty head, relation or tail"));
            }
            let h = entities.intern(h).ok_or_else(too_many)?;
            let r = relations.intern(r).ok_or_else(too_many)?;
            let t = entities.intern(t).ok_or_else(too_many)?;
            split.push((h, r, t));
            Ok(())
        })?;
    }
    let num_nodes = entities.len();
    let relations: Vec<Relation> = relations
        .into_names()
        .into_iter()
        .map(|name| Relation { name, src_type: Some(0), dst_type: Some(0) })
        .collect();
    let src = splits.train.iter().map(|t| t.0).collect();
    let rel = splits.train.iter().map(|t| t.1).collect();
    let dst = splits.train.iter().map(|t| t.2).collect();
    Ok(HeteroGraph {
        name: format!("triples:{}", dir.display()),
        node_types: vec!["entity".into()],
        type_offsets: vec![0, num_nodes],
        base_relations: relations.len(),
        relations,
        src,
        dst,
        rel,
        node_names: Some(entities.into_names()),
        link_splits: Some(splits),
        ..HeteroGraph::default()
    })
}
