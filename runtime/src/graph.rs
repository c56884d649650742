//! Heterogeneous graphs: typed nodes (grouped by type), edges with relation ids, node features,
//! labels and splits.
//!
//! Node ids are dense `0..num_nodes`, and the nodes of type `t` are exactly the ids
//! `type_offsets[t]..type_offsets[t + 1]`. Edges are kept as parallel arrays (COO) in load order;
//! layouts sorted for kernels (by relation, by destination) are built from them on demand.
//! Multi-edges and self-loops are allowed and count separately.
//!
//! Invariants checked by [`HeteroGraph::validate`]:
//! - `type_offsets` has `node_types.len() + 1` entries, starts at 0 and never decreases;
//! - `src`, `dst` and `rel` have the same length, every node id is below `num_nodes()` and every
//!   relation id below `num_relations()`;
//! - a relation with a `src_type` / `dst_type` only has edges whose endpoints have those types;
//! - `node_names` (when present) has one name per node; every node feature holds
//!   `num_nodes * dim` values and every edge feature `num_edges * dim`;
//! - label assignments and splits name existing nodes and classes; link-prediction triples name
//!   existing nodes and relations;
//! - `base_relations <= num_relations()`.

use std::fmt;

use crate::error::{Result, RuntimeError};

/// A relation (edge type).
#[derive(Clone, Debug, PartialEq)]
pub struct Relation {
    /// Its name (an IRI, a Freebase path, `paper-author`, `rev:...` for inverses, `self`).
    pub name: String,
    /// The node type of every source, when the relation connects one type pair.
    pub src_type: Option<u32>,
    /// The node type of every destination, when the relation connects one type pair.
    pub dst_type: Option<u32>,
}

/// A named dense node feature matrix, `num_nodes x dim`, row-major; nodes of types that have
/// no such feature hold zeros.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeFeature {
    /// The feature's name, used to bind a model input of the same name.
    pub name: String,
    /// Width of each row.
    pub dim: usize,
    /// `num_nodes * dim` values.
    pub data: Vec<f32>,
}

/// A named dense edge feature matrix, `num_edges x dim`, row-major (IMDB's link weights).
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeFeature {
    /// The feature's name, used to bind a model input of the same name.
    pub name: String,
    /// Width of each row.
    pub dim: usize,
    /// `num_edges * dim` values.
    pub data: Vec<f32>,
}

/// Node labels and the train/validation/test split.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Labels {
    /// Class names, indexed by class id.
    pub class_names: Vec<String>,
    /// Whether a node may carry several classes (IMDB).
    pub multi_label: bool,
    /// `(node, class)` pairs; a single-label node appears once.
    pub assignments: Vec<(u32, u32)>,
    /// Labelled nodes used for training.
    pub train: Vec<u32>,
    /// Labelled nodes used for validation (may be empty).
    pub valid: Vec<u32>,
    /// Labelled nodes used for testing.
    pub test: Vec<u32>,
}

impl Labels {
    /// Number of distinct labelled nodes.
    pub fn num_labelled(&self) -> usize {
        let mut nodes: Vec<u32> = self.assignments.iter().map(|&(n, _)| n).collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes.len()
    }
}

/// Link-prediction triples `(head, relation, tail)` of a knowledge graph, by split. The graph's
/// edges are the training triples; validation and test triples are kept here only.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct LinkSplits {
    /// Training triples (the same as the graph's base edges, in load order).
    pub train: Vec<(u32, u32, u32)>,
    /// Validation triples.
    pub valid: Vec<(u32, u32, u32)>,
    /// Test triples.
    pub test: Vec<(u32, u32, u32)>,
}

/// A heterogeneous multigraph.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct HeteroGraph {
    /// A short description of where it came from (`rdf:../aifb`).
    pub name: String,
    /// Node type names, indexed by type id.
    pub node_types: Vec<String>,
    /// `node_types.len() + 1` offsets: nodes of type `t` are `type_offsets[t]..type_offsets[t+1]`.
    pub type_offsets: Vec<usize>,
    /// Relations, indexed by relation id.
    pub relations: Vec<Relation>,
    /// Source node of each edge.
    pub src: Vec<u32>,
    /// Destination node of each edge.
    pub dst: Vec<u32>,
    /// Relation of each edge.
    pub rel: Vec<u32>,
    /// Per-node names (IRIs, entity strings) where the source format has them.
    pub node_names: Option<Vec<String>>,
    /// Dense node features, by name.
    pub features: Vec<NodeFeature>,
    /// Dense edge features, by name (kept in step with the edge arrays).
    pub edge_features: Vec<EdgeFeature>,
    /// Labels and splits, where the dataset has them.
    pub labels: Option<Labels>,
    /// Number of relations before inverse and self-loop relations were added.
    pub base_relations: usize,
    /// Link-prediction splits, for knowledge graphs loaded from triples.
    pub link_splits: Option<LinkSplits>,
}

impl HeteroGraph {
    /// Number of nodes.
    pub fn num_nodes(&self) -> usize {
        self.type_offsets.last().copied().unwrap_or(0)
    }
    /// Number of edges.
    pub fn num_edges(&self) -> usize {
        self.src.len()
    }
    /// Number of relations.
    pub fn num_relations(&self) -> usize {
        self.relations.len()
    }
    /// Number of node types.
    pub fn num_node_types(&self) -> usize {
        self.node_types.len()
    }
    /// The type of `node` (binary search over the type offsets).
    pub fn node_type(&self, node: u32) -> u32 {
        let n = node as usize;
        // partition_point gives the number of offsets <= n; the type is one less.
        let t = self.type_offsets.partition_point(|&o| o <= n);
        t.saturating_sub(1) as u32
    }
    /// Per-node type ids, `num_nodes` long.
    pub fn node_type_ids(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.num_nodes());
        for t in 0..self.num_node_types() {
            let count = self.type_offsets[t + 1] - self.type_offsets[t];
            out.resize(out.len() + count, t as u32);
        }
        out
    }
    /// The named node feature, if present.
    pub fn feature(&self, name: &str) -> Option<&NodeFeature> {
        self.features.iter().find(|f| f.name == name)
    }
}

impl HeteroGraph {
    /// Number of edges of each relation, `num_relations()` long (edges with an out-of-range
    /// relation id are not counted).
    pub fn relation_sizes(&self) -> Vec<usize> {
        let mut sizes = vec![0usize; self.num_relations()];
        for &r in &self.rel {
            if let Some(s) = sizes.get_mut(r as usize) {
                *s += 1;
            }
        }
        sizes
    }

    /// The declared node type at endpoint `ep` of every relation, needed where a row keyed by
    /// one endpoint selects by the other endpoint's type (compact rows). Errors name the first
    /// relation that does not connect a single node-type pair.
    pub fn relation_end_types(&self, ep: pigeon_ir::Endpoint) -> Result<Vec<u32>> {
        self.relations
            .iter()
            .map(|rel| {
                let t = match ep {
                    pigeon_ir::Endpoint::Src => rel.src_type,
                    pigeon_ir::Endpoint::Dst => rel.dst_type,
                };
                t.ok_or_else(|| {
                    RuntimeError::Unsupported(format!(
                        "the {ep} node type of relation `{}` is needed (a compact row selects by \
                         it), but the relation does not connect a single node-type pair",
                        rel.name
                    ))
                })
            })
            .collect()
    }

    /// In-degree of every node over all relations (out-of-range ids are not counted).
    pub fn in_degrees(&self) -> Vec<u32> {
        let mut deg = vec![0u32; self.num_nodes()];
        for &d in &self.dst {
            if let Some(x) = deg.get_mut(d as usize) {
                *x = x.saturating_add(1);
            }
        }
        deg
    }

    /// Checks the invariants listed in the module doc.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(RuntimeError::InvalidGraph(m));
        if self.type_offsets.len() != self.node_types.len() + 1 {
            return bad(format!(
                "{} node types but {} type offsets (expected {})",
                self.node_types.len(),
                self.type_offsets.len(),
                self.node_types.len() + 1
            ));
        }
        if self.type_offsets.first() != Some(&0) {
            return bad("type offsets do not start at 0".into());
        }
        if let Some(w) = self.type_offsets.windows(2).position(|w| w[1] < w[0]) {
            return bad(format!("type offsets decrease at node type {w}"));
        }
        let n = self.num_nodes();
        if n > u32::MAX as usize {
            return bad(format!("{n} nodes do not fit 32-bit ids"));
        }
        self.validate_edges()?;
        if let Some(names) = &self.node_names {
            if names.len() != n {
                return bad(format!("{} node names for {n} nodes", names.len()));
            }
        }
        for f in &self.features {
            if Some(f.data.len()) != n.checked_mul(f.dim) {
                return bad(format!(
                    "node feature `{}` holds {} values, expected {n} x {}",
                    f.name,
                    f.data.len(),
                    f.dim
                ));
            }
        }
        let e = self.num_edges();
        for f in &self.edge_features {
            if Some(f.data.len()) != e.checked_mul(f.dim) {
                return bad(format!(
                    "edge feature `{}` holds {} values, expected {e} x {}",
                    f.name,
                    f.data.len(),
                    f.dim
                ));
            }
        }
        if let Some(labels) = &self.labels {
            self.validate_labels(labels)?;
        }
        if let Some(splits) = &self.link_splits {
            let r = self.num_relations();
            for (which, triples) in
                [("train", &splits.train), ("valid", &splits.valid), ("test", &splits.test)]
            {
                if let Some(&(h, rel, t)) = triples
                    .iter()
                    .find(|&&(h, rel, t)| h as usize >= n || t as usize >= n || rel as usize >= r)
                {
                    return bad(format!("{which} triple ({h}, {rel}, {t}) is out of range"));
                }
            }
        }
        if self.base_relations > self.num_relations() {
            return bad(format!(
                "{} base relations but only {} relations",
                self.base_relations,
                self.num_relations()
            ));
        }
        Ok(())
    }

    /// Edge-array part of [`HeteroGraph::validate`].
    fn validate_edges(&self) -> Result<()> {
        let bad = |m: String| Err(RuntimeError::InvalidGraph(m));
        if self.dst.len() != self.src.len() || self.rel.len() != self.src.len() {
            return bad(format!(
                "edge arrays differ in length: src {}, dst {}, rel {}",
                self.src.len(),
                self.dst.len(),
                self.rel.len()
            ));
        }
        let t = self.num_node_types() as u32;
        for (i, r) in self.relations.iter().enumerate() {
            if r.src_type.is_some_and(|x| x >= t) || r.dst_type.is_some_and(|x| x >= t) {
                return bad(format!(
                    "relation {i} `{}` names a node type that does not exist",
                    r.name
                ));
            }
        }
        let n = self.num_nodes();
        let nr = self.num_relations();
        let typed = self.relations.iter().any(|r| r.src_type.is_some() || r.dst_type.is_some());
        for (i, ((&s, &d), &r)) in self.src.iter().zip(&self.dst).zip(&self.rel).enumerate() {
            if s as usize >= n || d as usize >= n {
                return bad(format!("edge {i} ({s} -> {d}) names a node beyond {n} nodes"));
            }
            let Some(relation) = self.relations.get(r as usize) else {
                return bad(format!("edge {i} has relation {r} but there are {nr} relations"));
            };
            if !typed {
                continue;
            }
            let (ts, td) = (self.node_type(s), self.node_type(d));
            if relation.src_type.is_some_and(|x| x != ts)
                || relation.dst_type.is_some_and(|x| x != td)
            {
                return bad(format!(
                    "edge {i} ({s} -> {d}) of relation `{}` joins node types {ts} -> {td}, \
                     not those of the relation",
                    relation.name
                ));
            }
        }
        Ok(())
    }

    /// Label part of [`HeteroGraph::validate`].
    fn validate_labels(&self, labels: &Labels) -> Result<()> {
        let n = self.num_nodes();
        let c = labels.class_names.len();
        if let Some(&(node, class)) = labels
            .assignments
            .iter()
            .find(|&&(node, class)| node as usize >= n || class as usize >= c)
        {
            return Err(RuntimeError::InvalidGraph(format!(
                "label ({node}, class {class}) is out of range ({n} nodes, {c} classes)"
            )));
        }
        for (which, nodes) in
            [("train", &labels.train), ("valid", &labels.valid), ("test", &labels.test)]
        {
            if let Some(&node) = nodes.iter().find(|&&node| node as usize >= n) {
                return Err(RuntimeError::InvalidGraph(format!(
                    "{which} node {node} is beyond {n} nodes"
                )));
            }
        }
        Ok(())
    }

    /// Adds, for every relation `r` of the `R` present, an inverse relation `rev:<name>` with id
    /// `R + r`, whose edges are those of `r` reversed (appended after the existing edges, in the
    /// same order). Edge feature rows are copied with their edges. `base_relations` is kept.
    pub fn with_inverse(mut self) -> Self {
        let r = self.relations.len() as u32;
        let inverse: Vec<Relation> = self
            .relations
            .iter()
            .map(|x| Relation {
                name: format!("rev:{}", x.name),
                src_type: x.dst_type,
                dst_type: x.src_type,
            })
            .collect();
        self.relations.extend(inverse);
        let e = self.src.len();
        let (src, dst) = (self.src.clone(), self.dst.clone());
        self.src.extend_from_slice(&dst);
        self.dst.extend_from_slice(&src);
        self.rel.extend_from_within(..e);
        for x in &mut self.rel[e..] {
            *x += r;
        }
        for f in &mut self.edge_features {
            let len = f.data.len();
            f.data.extend_from_within(..len);
        }
        self
    }

    /// Adds one relation `self` (the last id) with an edge `i -> i` for every node, appended
    /// after the existing edges. Edge features get rows of 1.0 for these edges, so that a
    /// weight-like feature (IMDB's `edge_weight`) counts a node's own message fully.
    /// `base_relations` is kept.
    pub fn with_self_loops(mut self) -> Self {
        let id = self.relations.len() as u32;
        let one_type = (self.node_types.len() == 1).then_some(0);
        self.relations.push(Relation {
            name: "self".into(),
            src_type: one_type,
            dst_type: one_type,
        });
        let n = self.num_nodes() as u32;
        self.src.extend(0..n);
        self.dst.extend(0..n);
        self.rel.resize(self.rel.len() + n as usize, id);
        for f in &mut self.edge_features {
            f.data.resize(f.data.len() + n as usize * f.dim, 1.0);
        }
        self
    }
}

impl fmt::Display for HeteroGraph {
    /// The summary printed by `pigeon graph info`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "graph       {}", self.name)?;
        writeln!(f, "nodes       {}", self.num_nodes())?;
        writeln!(f, "edges       {}", self.num_edges())?;
        write!(f, "relations   {}", self.num_relations())?;
        let extra = self.num_relations().saturating_sub(self.base_relations);
        if extra > 0 {
            write!(f, " ({} base + {extra} added)", self.base_relations)?;
        }
        write!(f, "\nnode types  {}", self.num_node_types())?;
        for (t, name) in self.node_types.iter().enumerate() {
            let lo = self.type_offsets.get(t).copied().unwrap_or(0);
            let hi = self.type_offsets.get(t + 1).copied().unwrap_or(lo);
            write!(f, "\n  {name:<10} {} (ids {lo}..{hi})", hi.saturating_sub(lo))?;
        }
        self.fmt_relations(f)?;
        let deg = self.in_degrees();
        if let Some(&max) = deg.iter().max() {
            let mean = self.num_edges() as f64 / deg.len() as f64;
            write!(f, "\nin-degree   mean {mean:.2}, max {max}")?;
        }
        for feat in &self.features {
            write!(f, "\nfeature     {} [{}]", feat.name, feat.dim)?;
        }
        for feat in &self.edge_features {
            write!(f, "\nedge feat.  {} [{}]", feat.name, feat.dim)?;
        }
        if let Some(labels) = &self.labels {
            write!(
                f,
                "\nlabelled    {} ({} classes{}; train {}, valid {}, test {})",
                labels.num_labelled(),
                labels.class_names.len(),
                if labels.multi_label { ", multi-label" } else { "" },
                labels.train.len(),
                labels.valid.len(),
                labels.test.len()
            )?;
        }
        if let Some(s) = &self.link_splits {
            write!(
                f,
                "\ntriples     train {}, valid {}, test {}",
                s.train.len(),
                s.valid.len(),
                s.test.len()
            )?;
        }
        Ok(())
    }
}

impl HeteroGraph {
    /// The relation lines of the summary: all relations when there are at most 12, otherwise
    /// the 8 largest.
    fn fmt_relations(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const ALL: usize = 12;
        const TOP: usize = 8;
        let sizes = self.relation_sizes();
        let mut order: Vec<usize> = (0..sizes.len()).collect();
        if sizes.len() > ALL {
            order.sort_by_key(|&r| (std::cmp::Reverse(sizes[r]), r));
            order.truncate(TOP);
            write!(f, "\nlargest relations")?;
        }
        let type_name = |t: Option<u32>| match t {
            Some(t) => self.node_types.get(t as usize).map_or("?", |s| s.as_str()),
            None => "*",
        };
        for r in order {
            let rel = &self.relations[r];
            write!(f, "\n  r{r:<4} {:>9}  {}", sizes[r], rel.name)?;
            if self.num_node_types() > 1 {
                write!(f, " ({} -> {})", type_name(rel.src_type), type_name(rel.dst_type))?;
            }
        }
        Ok(())
    }
}
