//! Binding a module's inputs to values, by name (`docs/language.md`, "Inputs at run time").
//!
//! - a node input named like a node feature of the graph gets that feature (the declared width
//!   must equal the feature's);
//! - the edge input `rel_norm` gets `1 / |E_{rel(e)}(dst(e))|`, `deg_norm` gets `1 / |E(dst(e))|`
//!   (declared `edge` or `edge[1]`);
//! - an edge input named like an edge feature of the graph (`edge_weight`) gets that feature;
//! - anything else gets deterministic standard-normal values from
//!   `Rng::for_stream(seed, "input:" + name)`, row after row.
//!
//! A dropout mask (`dropout(x, p)`) is bound to ones: dropout is the identity outside
//! training, which redraws the masks every step.
//!
//! A learned table (`weight E: node[d]`, `weight E[relation]: node[d]`) gets its initialiser's
//! values, one row per node or per (node, relation) pair of its endpoint (the compact table's
//! rows, sorted by (relation, node)). A table stands for a one-hot input times a weight, so its
//! Glorot bound is that weight's, `sqrt(6 / (nodes + row width))` (PyG's for `RGCNConv` on
//! featureless nodes), drawn from `Rng::for_stream(seed, name)` as weights are.

use crate::error::{Result, RuntimeError};
use crate::graph::HeteroGraph;
use crate::interp::{validate_graph, CompactTable};
use crate::rng::Rng;
use crate::tensor::Tensor;
use pigeon_ir::{Domain, Init, InputDecl, InputKind, Module, Shape};
use std::collections::HashMap;
use std::fmt;

/// Where a bound input's values came from.
#[derive(Clone, Debug, PartialEq)]
pub enum BindingSource {
    /// A node feature of the graph, of this width.
    NodeFeature {
        /// Feature width.
        dim: usize,
    },
    /// An edge feature of the graph, of this width.
    EdgeFeature {
        /// Feature width.
        dim: usize,
    },
    /// `1 / |E_r(dst)|`, computed from the graph.
    RelNorm,
    /// `1 / |E(dst)|`, computed from the graph.
    DegNorm,
    /// A learned table, initialised.
    Learned {
        /// Its rows (nodes, or the endpoint's (node, relation) pairs).
        rows: usize,
        /// The initialiser.
        init: Init,
        /// The run's seed.
        seed: u64,
    },
    /// A dropout mask, all ones (inference; training redraws it every step).
    DropoutMask {
        /// The drop probability.
        p: f64,
    },
    /// Standard-normal values from the seed.
    Random {
        /// The per-row shape.
        shape: Shape,
        /// The run's seed.
        seed: u64,
    },
}

/// How one input was bound, for the run summary.
#[derive(Clone, Debug, PartialEq)]
pub struct BindingNote {
    /// The input's name.
    pub name: String,
    /// Its domain (`node` or `edge`).
    pub domain: Domain,
    /// Where its values came from.
    pub source: BindingSource,
}

impl fmt::Display for BindingNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.name)?;
        match &self.source {
            BindingSource::NodeFeature { dim } => write!(f, "graph node feature [{dim}]"),
            BindingSource::EdgeFeature { dim } => write!(f, "graph edge feature [{dim}]"),
            BindingSource::RelNorm => f.write_str("graph-derived 1/|E_r(dst)|"),
            BindingSource::DegNorm => f.write_str("graph-derived 1/|E(dst)|"),
            BindingSource::Random { shape, seed } => {
                write!(f, "random normal {shape}, seed {seed}")
            }
            BindingSource::DropoutMask { p } => {
                write!(f, "dropout mask (p = {p}), ones outside training")
            }
            BindingSource::Learned { rows, init, seed } => {
                write!(
                    f,
                    "learned table of {rows} rows, {} initialisation, seed {seed}",
                    init.name()
                )
            }
        }
    }
}

/// Bound inputs, in declaration order, with a note per input.
pub type Bindings = (Vec<(String, Tensor)>, Vec<BindingNote>);

/// Binds every input of `module` (see the module doc); returns the values, in the order the
/// inputs are declared, and a note per input saying how it was bound.
pub fn bind_inputs(module: &Module, graph: &HeteroGraph, seed: u64) -> Result<Bindings> {
    validate_graph(graph)?;
    let mut values = Vec::new();
    let mut notes = Vec::new();
    for decl in module.inputs() {
        if values.iter().any(|(n, _)| *n == decl.name) {
            continue;
        }
        let (tensor, source) = bind_one(&decl, graph, seed)?;
        notes.push(BindingNote { name: decl.name.clone(), domain: decl.ty.domain, source });
        values.push((decl.name, tensor));
    }
    Ok((values, notes))
}

fn bind_one(decl: &InputDecl, graph: &HeteroGraph, seed: u64) -> Result<(Tensor, BindingSource)> {
    let name = decl.name.as_str();
    let shape = decl.ty.shape.clone();
    let err = |message: String| RuntimeError::Binding { name: name.to_string(), message };
    let rows = match decl.ty.domain {
        Domain::Node => graph.num_nodes(),
        Domain::Edge => graph.num_edges(),
        Domain::Compact(ep) => CompactTable::build(graph, ep).len(),
        d => return Err(err(format!("inputs are row values, this one is declared {d}"))),
    };
    crate::memory::check(
        || format!("input `{name}` ({rows} {} rows of {shape} f64)", decl.ty.domain),
        crate::memory::f64_bytes(rows, shape.numel()),
    )?;
    if let InputKind::Dropout(p) = decl.kind {
        // Inference: dropout is the identity. Training redraws the mask every step.
        let data = vec![1.0; rows * shape.numel()];
        return Ok((Tensor { rows, shape, data }, BindingSource::DropoutMask { p }));
    }
    if let InputKind::Table(init) = decl.kind {
        let n = rows * shape.numel();
        let data = match init {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::Glorot => {
                let limit = (6.0 / (graph.num_nodes() + shape.numel()).max(1) as f64).sqrt();
                let mut rng = Rng::for_stream(seed, name);
                (0..n).map(|_| rng.uniform(-limit, limit)).collect()
            }
        };
        return Ok((Tensor { rows, shape, data }, BindingSource::Learned { rows, init, seed }));
    }
    if decl.ty.domain == Domain::Node {
        if let Some(feat) = graph.feature(name) {
            let t = graph_table(name, feat.dim, &feat.data, rows, &shape, "node feature")?;
            return Ok((t, BindingSource::NodeFeature { dim: feat.dim }));
        }
    } else {
        if name == "rel_norm" || name == "deg_norm" {
            if shape.numel() != 1 || shape.rank() > 1 {
                return Err(err(format!(
                    "`{name}` is a scalar per edge (declare it `edge` or `edge[1]`), declared {shape}"
                )));
            }
            let (data, source) = if name == "rel_norm" {
                (rel_norm(graph), BindingSource::RelNorm)
            } else {
                (deg_norm(graph), BindingSource::DegNorm)
            };
            return Ok((Tensor { rows, shape, data }, source));
        }
        if let Some(feat) = graph.edge_features.iter().find(|f| f.name == name) {
            let t = graph_table(name, feat.dim, &feat.data, rows, &shape, "edge feature")?;
            return Ok((t, BindingSource::EdgeFeature { dim: feat.dim }));
        }
    }
    let mut rng = Rng::for_stream(seed, &format!("input:{name}"));
    let data = (0..rows * shape.numel()).map(|_| rng.normal()).collect();
    Ok((Tensor { rows, shape: shape.clone(), data }, BindingSource::Random { shape, seed }))
}

/// A graph-provided `rows x dim` table as a tensor of the declared per-row shape.
fn graph_table(
    name: &str,
    dim: usize,
    data: &[f32],
    rows: usize,
    shape: &Shape,
    what: &str,
) -> Result<Tensor> {
    if shape.numel() != dim {
        return Err(RuntimeError::Binding {
            name: name.to_string(),
            message: format!(
                "declared with {} values per row ({shape}), but the graph's {what} has width {dim}",
                shape.numel()
            ),
        });
    }
    if data.len() != rows * dim {
        return Err(RuntimeError::InvalidGraph(format!(
            "{what} `{name}` holds {} values, expected {rows} rows x {dim}",
            data.len()
        )));
    }
    Tensor::from_f32(rows, shape.clone(), data)
}

/// `1 / |E_{rel(e)}(dst(e))|` per edge. The graph must be valid.
pub fn rel_norm(graph: &HeteroGraph) -> Vec<f64> {
    let mut count: HashMap<(u32, u32), usize> = HashMap::new();
    for (&d, &r) in graph.dst.iter().zip(&graph.rel) {
        *count.entry((d, r)).or_insert(0) += 1;
    }
    graph
        .dst
        .iter()
        .zip(&graph.rel)
        .map(|(&d, &r)| 1.0 / count.get(&(d, r)).copied().unwrap_or(1) as f64)
        .collect()
}

/// `1 / |E(dst(e))|` per edge. The graph must be valid.
pub fn deg_norm(graph: &HeteroGraph) -> Vec<f64> {
    let mut deg = vec![0usize; graph.num_nodes()];
    for &d in &graph.dst {
        if let Some(c) = deg.get_mut(d as usize) {
            *c += 1;
        }
    }
    graph
        .dst
        .iter()
        .map(|&d| 1.0 / deg.get(d as usize).copied().unwrap_or(1).max(1) as f64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{EdgeFeature, NodeFeature, Relation};
    use pigeon_ir::builder::ModuleBuilder;

    /// 4 nodes of one type; edges e0: 0->1 r0, e1: 2->1 r0, e2: 3->1 r1, e3: 1->2 r1, e4: 1->1 r1
    /// (a self-loop), e5: 0->2 r0; node 0 and node 3 receive nothing.
    fn graph() -> HeteroGraph {
        HeteroGraph {
            node_types: vec!["n".into()],
            type_offsets: vec![0, 4],
            relations: vec![
                Relation { name: "a".into(), src_type: Some(0), dst_type: Some(0) },
                Relation { name: "b".into(), src_type: Some(0), dst_type: Some(0) },
            ],
            src: vec![0, 2, 3, 1, 1, 0],
            dst: vec![1, 1, 1, 2, 1, 2],
            rel: vec![0, 0, 1, 1, 1, 0],
            features: vec![NodeFeature {
                name: "feat".into(),
                dim: 3,
                data: (0..12).map(|i| i as f32).collect(),
            }],
            edge_features: vec![EdgeFeature {
                name: "edge_weight".into(),
                dim: 1,
                data: vec![0.5; 6],
            }],
            ..HeteroGraph::default()
        }
    }

    fn bind(inputs: &[(&str, Domain, &[usize])]) -> Result<Bindings> {
        let mut b = ModuleBuilder::new("m");
        for (name, domain, shape) in inputs {
            let v = b.input(name, *domain, shape).unwrap_or_else(|e| panic!("{e}"));
            b.output(name, v);
        }
        let module = b.finish().unwrap_or_else(|e| panic!("{e}"));
        bind_inputs(&module, &graph(), 7)
    }

    #[test]
    fn norms_from_known_degrees() {
        let (values, notes) =
            bind(&[("rel_norm", Domain::Edge, &[]), ("deg_norm", Domain::Edge, &[1])])
                .unwrap_or_else(|e| panic!("{e}"));
        // Node 1 receives e0, e1 (r0) and e2, e4 (r1); node 2 receives e5 (r0) and e3 (r1).
        // rel_norm: 1/|E_r(dst)| = 1/2 for e0, e1, e2, e4 and 1/1 for e3, e5.
        assert_eq!(values[0].1.data, vec![1.0 / 2.0, 1.0 / 2.0, 1.0 / 2.0, 1.0, 1.0 / 2.0, 1.0]);
        // deg_norm: 1/4 into node 1, 1/2 into node 2.
        assert_eq!(values[1].1.data, vec![0.25, 0.25, 0.25, 0.5, 0.25, 0.5]);
        assert_eq!(values[1].1.shape, Shape(vec![1]));
        assert_eq!(notes[0].to_string(), "rel_norm: graph-derived 1/|E_r(dst)|");
        assert_eq!(notes[1].to_string(), "deg_norm: graph-derived 1/|E(dst)|");
    }

    #[test]
    fn graph_features_by_name_and_width() {
        let (values, notes) =
            bind(&[("feat", Domain::Node, &[3]), ("edge_weight", Domain::Edge, &[])])
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(values[0].1.row(2), &[6.0, 7.0, 8.0]);
        assert_eq!(values[1].1.data, vec![0.5; 6]);
        assert_eq!(notes[0].to_string(), "feat: graph node feature [3]");
        let err = bind(&[("feat", Domain::Node, &[4])]);
        assert!(
            matches!(&err, Err(RuntimeError::Binding { name, message }) if name == "feat" && message.contains("4 values") && message.contains("width 3")),
            "{err:?}"
        );
        let err = bind(&[("rel_norm", Domain::Edge, &[2])]);
        assert!(
            matches!(&err, Err(RuntimeError::Binding { name, .. }) if name == "rel_norm"),
            "{err:?}"
        );
    }

    #[test]
    fn other_inputs_are_reproducible_normals() {
        let once = bind(&[("z", Domain::Node, &[2]), ("y", Domain::Node, &[2])])
            .unwrap_or_else(|e| panic!("{e}"));
        let again = bind(&[("z", Domain::Node, &[2])]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(once.0[0], again.0[0]);
        assert_ne!(once.0[0].1.data, once.0[1].1.data);
        let mut rng = Rng::for_stream(7, "input:z");
        let first: Vec<f64> = (0..8).map(|_| rng.normal()).collect();
        assert_eq!(once.0[0].1.data, first);
        assert_eq!(once.1[0].to_string(), "z: random normal [2], seed 7");
    }

    #[test]
    fn learned_tables_have_a_row_per_node_or_per_node_and_relation() {
        let mut b = ModuleBuilder::new("m");
        let ok =
            |r: std::result::Result<_, pigeon_ir::IrError>| r.unwrap_or_else(|e| panic!("{e}"));
        let t = ok(b.table("T", Domain::Compact(pigeon_ir::Endpoint::Src), &[2], Init::Glorot));
        let n = ok(b.table("N", Domain::Node, &[2], Init::Ones));
        b.output("t", t);
        b.output("n", n);
        let module = b.finish().unwrap_or_else(|e| panic!("{e}"));
        let (values, notes) = bind_inputs(&module, &graph(), 7).unwrap_or_else(|e| panic!("{e}"));
        // (relation, source) pairs: (0, 0) twice, (0, 2), (1, 3), (1, 1) twice: 4 rows.
        assert_eq!(values[0].1.rows, 4);
        // Glorot over (4 nodes, 2 wide): bound sqrt(6 / 6) = 1, from the weights' stream.
        let mut rng = Rng::for_stream(7, "T");
        let want: Vec<f64> = (0..8).map(|_| rng.uniform(-1.0, 1.0)).collect();
        assert_eq!(values[0].1.data, want);
        assert_eq!(values[1].1.data, vec![1.0; 8]);
        assert_eq!(
            notes[0].to_string(),
            "T: learned table of 4 rows, glorot initialisation, seed 7"
        );
    }

    #[test]
    fn invalid_graphs_are_rejected() {
        let mut b = ModuleBuilder::new("m");
        let v = b.input("deg_norm", Domain::Edge, &[]).unwrap_or_else(|e| panic!("{e}"));
        b.output("o", v);
        let module = b.finish().unwrap_or_else(|e| panic!("{e}"));
        let mut g = graph();
        g.dst[3] = 4;
        assert!(matches!(bind_inputs(&module, &g, 0), Err(RuntimeError::InvalidGraph(_))));
    }
}
