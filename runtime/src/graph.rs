//! Heterogeneous graphs: typed nodes (grouped by type), edges with relation ids, node features,
//! labels and splits.
//!
//! Node ids are dense `0..num_nodes`, and the nodes of type `t` are exactly the ids
//! `type_offsets[t]..type_offsets[t + 1]`. Edges are kept as parallel arrays (COO) in load order;
//! layouts sorted for kernels (by relation, by destination) are built from them on demand.
//! Multi-edges and self-loops are allowed and count separately.

use std::fmt;

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
            out.extend(std::iter::repeat(t as u32).take(count));
        }
        out
    }
    /// The named node feature, if present.
    pub fn feature(&self, name: &str) -> Option<&NodeFeature> {
        self.features.iter().find(|f| f.name == name)
    }
}

impl fmt::Display for HeteroGraph {
    /// The summary printed by `pigeon graph info`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "graph       {}", self.name)?;
        writeln!(f, "nodes       {}", self.num_nodes())?;
        writeln!(f, "edges       {}", self.num_edges())?;
        writeln!(f, "relations   {}", self.num_relations())?;
        write!(f, "node types  {}", self.num_node_types())?;
        for (t, name) in self.node_types.iter().enumerate() {
            let count = self.type_offsets[t + 1] - self.type_offsets[t];
            write!(f, "\n  {name:<10} {count}")?;
        }
        for feat in &self.features {
            write!(f, "\nfeature     {} [{}]", feat.name, feat.dim)?;
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
        Ok(())
    }
}
