//! The `heco:` loader: the ACM heterograph as released with HeCo (Wang et al., KDD 2021).
//!
//! Files: `pa.txt` and `ps.txt` (one `paper author` / `paper subject` pair per line, ids local to
//! each node type), `labels.npy` (one class per paper), `p_feat.npz` / `a_feat.npz` (scipy
//! sparse matrices from `save_npz`, CSR or COO), `train_20.npy` / `val_20.npy` / `test_20.npy`
//! (paper ids; a missing split file gives an empty split).
//!
//! Node types `paper`, `author`, `subject`, grouped in that order (papers first, so a paper's
//! global id is its local id). Counts: papers from `labels.npy`, authors from the rows of
//! `a_feat.npz` (else the largest author id + 1), subjects from the largest subject id + 1; with
//! the release in `../shared/datasets` that is 4,019 / 7,167 / 60.
//!
//! Relations, following HeCo and PyG's `to_undirected` use of this graph, in both directions:
//! 0 `paper-author`, 1 `author-paper`, 2 `paper-subject`, 3 `subject-paper` (13,407 + 13,407 +
//! 4,019 + 4,019 = 34,852 edges). All four count as base relations, so the spec option
//! `inverse` would add four more `rev:` relations on top.
//!
//! Features: one dense node feature `feat` as wide as the widest feature file (1,902); paper
//! and author rows hold their bag-of-words values, subject rows are zero.

use std::path::{Path, PathBuf};

use super::npy::{parse_npy, read_npy, NpyArray, NpyData};
use super::zip::ZipArchive;
use super::{for_each_line, open, parse_error, read_bytes};
use crate::error::Result;
use crate::graph::{HeteroGraph, Labels, NodeFeature, Relation};

/// A sparse matrix as `(row, column, value)` entries.
struct Sparse {
    rows: usize,
    cols: usize,
    entries: Vec<(usize, usize, f32)>,
}

/// Loads the ACM graph from a HeCo release directory.
pub fn load_heco(dir: &Path) -> Result<HeteroGraph> {
    let labels_path = dir.join("labels.npy");
    let classes = ints_1d(&labels_path, &read_npy(&labels_path)?)?;
    let papers = classes.len();
    let p_feat = optional_sparse(&dir.join("p_feat.npz"))?;
    let a_feat = optional_sparse(&dir.join("a_feat.npz"))?;
    if let Some(f) = &p_feat {
        if f.rows != papers {
            return Err(parse_error(
                &dir.join("p_feat.npz"),
                0,
                format!("{} rows but {papers} papers in labels.npy", f.rows),
            ));
        }
    }
    let pa = read_pairs(&dir.join("pa.txt"), papers, a_feat.as_ref().map(|f| f.rows))?;
    let ps = read_pairs(&dir.join("ps.txt"), papers, None)?;
    let authors = a_feat.as_ref().map_or_else(|| max_plus_one(&pa), |f| f.rows);
    let subjects = max_plus_one(&ps);
    let (a0, s0) = (papers, papers + authors);
    let num_nodes = s0 + subjects;
    if u32::try_from(num_nodes).is_err() {
        return Err(parse_error(dir, 0, "more than 2^32 nodes"));
    }
    let mut g = HeteroGraph {
        name: format!("heco:{}", dir.display()),
        node_types: vec!["paper".into(), "author".into(), "subject".into()],
        type_offsets: vec![0, a0, s0, num_nodes],
        relations: [
            ("paper-author", 0, 1),
            ("author-paper", 1, 0),
            ("paper-subject", 0, 2),
            ("subject-paper", 2, 0),
        ]
        .into_iter()
        .map(|(name, s, d)| Relation { name: name.into(), src_type: Some(s), dst_type: Some(d) })
        .collect(),
        base_relations: 4,
        ..HeteroGraph::default()
    };
    for (pairs, offset, forward) in [(&pa, a0, 0u32), (&ps, s0, 2u32)] {
        let ids = || pairs.iter().map(|&(p, x)| (p as u32, (x + offset) as u32));
        for (rel, reverse) in [(forward, false), (forward + 1, true)] {
            for (p, x) in ids() {
                let (s, d) = if reverse { (x, p) } else { (p, x) };
                g.src.push(s);
                g.dst.push(d);
                g.rel.push(rel);
            }
        }
    }
    let dim =
        [&p_feat, &a_feat].iter().filter_map(|f| f.as_ref().map(|f| f.cols)).max().unwrap_or(0);
    if !matches!(num_nodes.checked_mul(dim), Some(x) if x <= 1 << 32) {
        return Err(parse_error(
            dir,
            0,
            format!("{num_nodes} nodes x {dim} features is too large to hold densely"),
        ));
    }
    g.features.push(dense_feature(num_nodes, dim, [(0, p_feat), (a0, a_feat)]));
    g.labels = Some(load_splits(dir, &classes)?);
    Ok(g)
}

/// A 1-D integer array (floats must be integral), or an error naming `path`.
fn ints_1d(path: &Path, a: &NpyArray) -> Result<Vec<i64>> {
    if a.shape.len() != 1 {
        return Err(parse_error(
            path,
            0,
            format!("expected a 1-D array, found shape {:?}", a.shape),
        ));
    }
    a.to_ints().ok_or_else(|| parse_error(path, 0, "expected integer values"))
}

/// Reads `paper other` pairs, checking papers against `papers` and others against `others`.
fn read_pairs(path: &Path, papers: usize, others: Option<usize>) -> Result<Vec<(usize, usize)>> {
    let mut pairs = Vec::new();
    for_each_line(path, open(path)?, |line, text| {
        let cols: Vec<&str> = text.split_whitespace().collect();
        if cols.is_empty() {
            return Ok(());
        }
        if cols.len() != 2 {
            return Err(parse_error(
                path,
                line,
                format!("expected 2 columns (paper, other), found {}", cols.len()),
            ));
        }
        let p: usize = super::number(path, line, cols[0], "paper id")?;
        let x: usize = super::number(path, line, cols[1], "id")?;
        if p >= papers {
            return Err(parse_error(
                path,
                line,
                format!("paper id {p} out of range (labels.npy has {papers} papers)"),
            ));
        }
        if let Some(n) = others.filter(|&n| x >= n) {
            return Err(parse_error(
                path,
                line,
                format!("id {x} out of range ({n} rows in the feature file)"),
            ));
        }
        if x >= u32::MAX as usize {
            return Err(parse_error(path, line, format!("id {x} out of range")));
        }
        pairs.push((p, x));
        Ok(())
    })?;
    Ok(pairs)
}

fn max_plus_one(pairs: &[(usize, usize)]) -> usize {
    pairs.iter().map(|&(_, x)| x + 1).max().unwrap_or(0)
}

/// One dense `feat` matrix from per-type sparse blocks starting at the given node offsets.
fn dense_feature<const K: usize>(
    num_nodes: usize,
    dim: usize,
    blocks: [(usize, Option<Sparse>); K],
) -> NodeFeature {
    let mut data = vec![0.0f32; num_nodes * dim];
    for (offset, block) in blocks {
        for (r, c, v) in block.map(|b| b.entries).unwrap_or_default() {
            if let Some(x) = data.get_mut((offset + r) * dim + c) {
                *x = v;
            }
        }
    }
    NodeFeature { name: "feat".into(), dim, data }
}

/// Labels (single-label, class names `0`, `1`, ...) and the 20-per-class splits.
fn load_splits(dir: &Path, classes: &[i64]) -> Result<Labels> {
    let path = dir.join("labels.npy");
    let mut labels = Labels::default();
    let mut num_classes = 0usize;
    for (node, &c) in classes.iter().enumerate() {
        let c = u32::try_from(c)
            .map_err(|_| parse_error(&path, 0, format!("paper {node} has class {c}")))?;
        num_classes = num_classes.max(c as usize + 1);
        labels.assignments.push((node as u32, c));
    }
    labels.class_names = (0..num_classes).map(|c| c.to_string()).collect();
    for (name, split) in [
        ("train_20.npy", &mut labels.train),
        ("val_20.npy", &mut labels.valid),
        ("test_20.npy", &mut labels.test),
    ] {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        for id in ints_1d(&path, &read_npy(&path)?)? {
            match usize::try_from(id) {
                Ok(i) if i < classes.len() => split.push(i as u32),
                _ => {
                    return Err(parse_error(
                        &path,
                        0,
                        format!("paper id {id} out of range ({} papers)", classes.len()),
                    ))
                }
            }
        }
    }
    Ok(labels)
}

/// Reads a scipy sparse `.npz` if the file exists.
fn optional_sparse(path: &Path) -> Result<Option<Sparse>> {
    if path.exists() {
        read_sparse(path).map(Some)
    } else {
        Ok(None)
    }
}

/// Reads a matrix saved by `scipy.sparse.save_npz` in CSR, CSC or COO format.
fn read_sparse(path: &Path) -> Result<Sparse> {
    let bytes = read_bytes(path)?;
    let zip = ZipArchive::new(path, &bytes)?;
    let member = |name: &str| -> Result<Option<NpyArray>> {
        let file = format!("{name}.npy");
        let inner: PathBuf = path.join(&file);
        match zip.read(&file)? {
            Some(b) => parse_npy(&inner, &b).map(Some),
            None => Ok(None),
        }
    };
    let need = |name: &str| -> Result<NpyArray> {
        member(name)?.ok_or_else(|| {
            parse_error(path, 0, format!("no `{name}.npy` member (has {:?})", zip.names()))
        })
    };
    let format = match member("format")? {
        Some(NpyArray { data: NpyData::Bytes { data, .. }, .. }) => {
            String::from_utf8_lossy(&data).trim_end_matches('\0').to_owned()
        }
        _ if zip.names().contains(&"indptr.npy") => "csr".into(),
        _ => "coo".into(),
    };
    let ints = |name: &str| -> Result<Vec<usize>> {
        let a = need(name)?;
        let v = a
            .to_ints()
            .ok_or_else(|| parse_error(path, 0, format!("`{name}.npy` is not integer")))?;
        v.into_iter()
            .map(|x| {
                usize::try_from(x).map_err(|_| {
                    parse_error(path, 0, format!("negative value {x} in `{name}.npy`"))
                })
            })
            .collect()
    };
    let shape = ints("shape")?;
    let [rows, cols] = shape[..] else {
        return Err(parse_error(
            path,
            0,
            format!("`shape.npy` should hold 2 numbers, holds {}", shape.len()),
        ));
    };
    let values =
        need("data")?.to_f32().ok_or_else(|| parse_error(path, 0, "`data.npy` is not numeric"))?;
    let (major, minor) = match format.as_str() {
        "csr" | "csc" => (expand_indptr(path, &ints("indptr")?, values.len())?, ints("indices")?),
        "coo" => (ints("row")?, ints("col")?),
        f => {
            return Err(parse_error(
                path,
                0,
                format!("sparse format `{f}` is not supported (csr, csc, coo)"),
            ))
        }
    };
    let (row_idx, col_idx) = if format == "csc" { (minor, major) } else { (major, minor) };
    if row_idx.len() != values.len() || col_idx.len() != values.len() {
        return Err(parse_error(path, 0, "index and data arrays differ in length"));
    }
    let mut entries = Vec::with_capacity(values.len());
    for ((r, c), v) in row_idx.into_iter().zip(col_idx).zip(values) {
        if r >= rows || c >= cols {
            return Err(parse_error(
                path,
                0,
                format!("entry ({r}, {c}) outside the {rows} x {cols} shape"),
            ));
        }
        entries.push((r, c, v));
    }
    if !matches!(rows.checked_mul(cols), Some(x) if x <= 1 << 34) {
        return Err(parse_error(path, 0, format!("{rows} x {cols} is too large to hold densely")));
    }
    Ok(Sparse { rows, cols, entries })
}

/// The major index of each stored entry from a compressed `indptr`.
fn expand_indptr(path: &Path, indptr: &[usize], nnz: usize) -> Result<Vec<usize>> {
    if indptr.last().copied() != Some(nnz) || indptr.windows(2).any(|w| w[1] < w[0]) {
        return Err(parse_error(
            path,
            0,
            "`indptr.npy` is not a non-decreasing array ending at the entry count",
        ));
    }
    let mut out = Vec::with_capacity(nnz);
    for (i, w) in indptr.windows(2).enumerate() {
        out.resize(out.len() + (w[1] - w[0]), i);
    }
    Ok(out)
}
