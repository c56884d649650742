//! The `hgb:` loader: graphs in the Heterogeneous Graph Benchmark format (Lv et al., KDD 2021),
//! here IMDB without node features.
//!
//! Files: `link.dat` (`src<TAB>dst<TAB>edge_type<TAB>weight`, one global id space), `meta.dat`
//! (counts: `"Node Type_k": n` lines; the release in `../shared/datasets` leaves the last type's
//! count empty, so one missing count is derived from `"Node Total"`), `info.dat` (JSON: node type
//! names, each link type's start and end node types and meaning, class names), `label.dat` and
//! `label.dat.test` (`id<TAB>name<TAB>type<TAB>c1,c2,...`: multi-label; train and test).
//!
//! Nodes of type `k` are the consecutive ids after those of types `0..k` (the HGB convention).
//! Relations are the link types `0..R`, named by `info.dat`'s `meaning` (`movie->director`)
//! or `r<k>` without one; a link whose endpoints do not have the link type's node types is an
//! error. The weight column becomes the edge feature `edge_weight` (width 1). No validation
//! split is given; IMDB: 21,420 nodes, 86,642 edges, 6 relations, 5 classes, 1,371 training
//! and 3,202 test movies, 7,963 labels.

use std::path::Path;

use super::json::{self, Json};
use super::{fields, for_each_line, number, open, parse_error, read_bytes};
use crate::error::Result;
use crate::graph::{EdgeFeature, HeteroGraph, Labels, Relation};

/// Loads an HGB dataset directory.
pub fn load_hgb(dir: &Path) -> Result<HeteroGraph> {
    let info_path = dir.join("info.dat");
    let info = if info_path.exists() {
        let bytes = read_bytes(&info_path)?;
        let text =
            String::from_utf8(bytes).map_err(|_| parse_error(&info_path, 0, "not valid UTF-8"))?;
        Some(json::parse(&info_path, &text)?)
    } else {
        None
    };
    let meta = read_meta(&dir.join("meta.dat"))?;
    let counts = node_counts(&dir.join("meta.dat"), &meta)?;
    let mut g = HeteroGraph { name: format!("hgb:{}", dir.display()), ..HeteroGraph::default() };
    let type_names = info.as_ref().and_then(|i| i.get("node.dat")).and_then(|n| n.get("node type"));
    for (t, _) in counts.iter().enumerate() {
        let name = type_names.and_then(|n| n.get(&t.to_string())).and_then(Json::as_str);
        g.node_types.push(name.map_or_else(|| format!("t{t}"), str::to_owned));
    }
    g.type_offsets = std::iter::once(0)
        .chain(counts.iter().scan(0, |acc, &c| {
            *acc += c;
            Some(*acc)
        }))
        .collect();
    if u32::try_from(g.num_nodes()).is_err() {
        return Err(parse_error(&dir.join("meta.dat"), 0, "more than 2^32 nodes"));
    }
    g.relations = relations(&meta, info.as_ref(), counts.len());
    g.base_relations = g.relations.len();
    let weights = read_links(&dir.join("link.dat"), &mut g)?;
    g.edge_features.push(EdgeFeature { name: "edge_weight".into(), dim: 1, data: weights });
    g.labels = read_labels(dir, &g, info.as_ref())?;
    Ok(g)
}

/// `(key, value, line)` for every `"key": value` line of `meta.dat` (values may be empty).
fn read_meta(path: &Path) -> Result<Vec<(String, String, usize)>> {
    let mut out = Vec::new();
    for_each_line(path, open(path)?, |line, text| {
        let t = text.trim().trim_end_matches(',');
        if let Some((k, v)) = t.split_once(':') {
            out.push((k.trim().trim_matches('"').to_owned(), v.trim().to_owned(), line));
        }
        Ok(())
    })?;
    Ok(out)
}

/// Node counts per type from `Node Type_k` entries; one missing count is `Node Total` minus
/// the others.
fn node_counts(path: &Path, meta: &[(String, String, usize)]) -> Result<Vec<usize>> {
    let mut counts: Vec<Option<usize>> = Vec::new();
    let mut total = None;
    for (k, v, line) in meta {
        let value = || -> Result<Option<usize>> {
            if v.is_empty() {
                Ok(None)
            } else {
                number(path, *line, v, "count").map(Some)
            }
        };
        if k == "Node Total" {
            total = value()?;
        } else if let Some(t) = k.strip_prefix("Node Type_") {
            let t: usize = number(path, *line, t, "node type")?;
            if t > 4096 {
                return Err(parse_error(
                    path,
                    *line,
                    format!("node type {t} is implausibly large"),
                ));
            }
            if counts.len() <= t {
                counts.resize(t + 1, None);
            }
            counts[t] = value()?;
        }
    }
    let missing: Vec<usize> = (0..counts.len()).filter(|&t| counts[t].is_none()).collect();
    let known: usize = counts.iter().flatten().sum();
    match (missing.as_slice(), total) {
        ([], _) => {}
        ([t], Some(total)) if total >= known => counts[*t] = Some(total - known),
        _ => {
            return Err(parse_error(
                path,
                0,
                "node type counts missing and not derivable from `Node Total`",
            ))
        }
    }
    if counts.is_empty() {
        return Err(parse_error(path, 0, "no `Node Type_k` counts"));
    }
    Ok(counts.into_iter().flatten().collect())
}

/// Relations from `info.dat`'s link types, else `Edge Type_k` entries of `meta.dat`.
fn relations(
    meta: &[(String, String, usize)],
    info: Option<&Json>,
    ntypes: usize,
) -> Vec<Relation> {
    let links = info.and_then(|i| i.get("link.dat")).and_then(|l| l.get("link type"));
    let from_meta = meta
        .iter()
        .filter_map(|(k, _, _)| k.strip_prefix("Edge Type_")?.parse::<usize>().ok())
        .max();
    let from_info =
        links.map(|l| l.members().iter().filter_map(|(k, _)| k.parse::<usize>().ok()).max());
    let count = from_meta.max(from_info.flatten()).map_or(0, |m| m + 1);
    (0..count)
        .map(|r| {
            let link = links.and_then(|l| l.get(&r.to_string()));
            let end = |key: &str| {
                link.and_then(|l| l.get(key))
                    .and_then(Json::as_index)
                    .filter(|&t| t < ntypes)
                    .map(|t| t as u32)
            };
            let name = link.and_then(|l| l.get("meaning")).and_then(Json::as_str);
            Relation {
                name: name.map_or_else(|| format!("r{r}"), str::to_owned),
                src_type: end("start"),
                dst_type: end("end"),
            }
        })
        .collect()
}

/// Reads `link.dat` into the graph's edge arrays; returns the weights.
fn read_links(path: &Path, g: &mut HeteroGraph) -> Result<Vec<f32>> {
    let n = g.num_nodes();
    let mut weights = Vec::new();
    for_each_line(path, open(path)?, |line, text| {
        if text.trim().is_empty() {
            return Ok(());
        }
        let cols = fields(path, line, text, 4, "src, dst, edge type, weight")?;
        let s: u32 = number(path, line, cols[0], "source id")?;
        let d: u32 = number(path, line, cols[1], "destination id")?;
        let r: u32 = number(path, line, cols[2], "edge type")?;
        let w: f32 = number(path, line, cols[3], "weight")?;
        for id in [s, d] {
            if id as usize >= n {
                return Err(parse_error(
                    path,
                    line,
                    format!("node id {id} out of range ({n} nodes in meta.dat)"),
                ));
            }
        }
        let Some(rel) = g.relations.get(r as usize) else {
            return Err(parse_error(
                path,
                line,
                format!(
                    "unknown edge type {r} ({} edge types in meta.dat/info.dat)",
                    g.relations.len()
                ),
            ));
        };
        let (ts, td) = (g.node_type(s), g.node_type(d));
        if rel.src_type.is_some_and(|t| t != ts) || rel.dst_type.is_some_and(|t| t != td) {
            return Err(parse_error(
                path,
                line,
                format!("edge {s} -> {d} joins node types {ts} -> {td}, but edge type {r} `{}` does not", rel.name),
            ));
        }
        g.src.push(s);
        g.dst.push(d);
        g.rel.push(r);
        weights.push(w);
        Ok(())
    })?;
    Ok(weights)
}

/// Reads `label.dat` (train) and `label.dat.test` (test), each optional.
fn read_labels(dir: &Path, g: &HeteroGraph, info: Option<&Json>) -> Result<Option<Labels>> {
    let names = info
        .and_then(|i| i.get("label.dat"))
        .and_then(|l| l.get("node type"))
        .and_then(|t| t.members().first());
    let names: Vec<String> = names.map_or(Vec::new(), |(_, classes)| {
        classes.members().iter().filter_map(|(_, v)| v.as_str().map(str::to_owned)).collect()
    });
    let mut labels = Labels { multi_label: true, ..Labels::default() };
    let mut any = false;
    let mut max_class = None;
    for (file, is_train) in [("label.dat", true), ("label.dat.test", false)] {
        let path = dir.join(file);
        if !path.exists() {
            continue;
        }
        any = true;
        for_each_line(&path, open(&path)?, |line, text| {
            if text.trim().is_empty() {
                return Ok(());
            }
            let cols = fields(&path, line, text, 4, "id, name, type, labels")?;
            let node: u32 = number(&path, line, cols[0], "node id")?;
            let t: u32 = number(&path, line, cols[2], "node type")?;
            if node as usize >= g.num_nodes() {
                return Err(parse_error(
                    &path,
                    line,
                    format!("node id {node} out of range ({} nodes)", g.num_nodes()),
                ));
            }
            if g.node_type(node) != t {
                return Err(parse_error(
                    &path,
                    line,
                    format!("node {node} has type {}, not {t}", g.node_type(node)),
                ));
            }
            for c in cols[3].split(',') {
                let c: u32 = number(&path, line, c, "class")?;
                if !names.is_empty() && c as usize >= names.len() {
                    return Err(parse_error(
                        &path,
                        line,
                        format!("class {c} out of range ({} classes in info.dat)", names.len()),
                    ));
                }
                max_class = max_class.max(Some(c));
                labels.assignments.push((node, c));
            }
            if is_train {
                labels.train.push(node)
            } else {
                labels.test.push(node)
            }
            Ok(())
        })?;
    }
    let num_classes = names.len().max(max_class.map_or(0, |c| c as usize + 1));
    labels.class_names =
        (0..num_classes).map(|c| names.get(c).cloned().unwrap_or_else(|| c.to_string())).collect();
    Ok(any.then_some(labels))
}
