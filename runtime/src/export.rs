//! Export of a loaded graph as a safetensors file, so that peer frameworks (the PyTorch
//! Geometric scripts under `bench/`) run on exactly the graph pigeon ran on.
//!
//! Tensors: `src`, `dst`, `rel` (I64, one per edge), `node_type` (I64, one per node),
//! `type_offsets` (I64, node types + 1), and each node feature as F32 `[nodes, dim]` named
//! `feat:<name>`. Metadata: `nodes`, `relations`, `node_types` (counts, as decimal strings).

use crate::error::{Result, RuntimeError};
use crate::graph::HeteroGraph;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::collections::HashMap;

/// The bytes of a safetensors file describing `graph`.
pub fn graph_to_safetensors(graph: &HeteroGraph) -> Result<Vec<u8>> {
    let as_i64 = |v: &mut dyn Iterator<Item = u64>| -> Vec<u8> {
        v.flat_map(|x| (x as i64).to_le_bytes()).collect()
    };
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = vec![
        (
            "src".into(),
            Dtype::I64,
            vec![graph.num_edges()],
            as_i64(&mut graph.src.iter().map(|&x| u64::from(x))),
        ),
        (
            "dst".into(),
            Dtype::I64,
            vec![graph.num_edges()],
            as_i64(&mut graph.dst.iter().map(|&x| u64::from(x))),
        ),
        (
            "rel".into(),
            Dtype::I64,
            vec![graph.num_edges()],
            as_i64(&mut graph.rel.iter().map(|&x| u64::from(x))),
        ),
        (
            "node_type".into(),
            Dtype::I64,
            vec![graph.num_nodes()],
            as_i64(&mut graph.node_type_ids().into_iter().map(u64::from)),
        ),
        (
            "type_offsets".into(),
            Dtype::I64,
            vec![graph.type_offsets.len()],
            as_i64(&mut graph.type_offsets.iter().map(|&x| x as u64)),
        ),
    ];
    for f in &graph.features {
        let bytes = f.data.iter().flat_map(|x| x.to_le_bytes()).collect();
        owned.push((format!("feat:{}", f.name), Dtype::F32, vec![graph.num_nodes(), f.dim], bytes));
    }
    let mut views = Vec::with_capacity(owned.len());
    for (name, dtype, shape, bytes) in &owned {
        let view = TensorView::new(*dtype, shape.clone(), bytes)
            .map_err(|e| RuntimeError::Internal(format!("graph tensor `{name}`: {e}")))?;
        views.push((name.clone(), view));
    }
    let meta: HashMap<String, String> = [
        ("nodes".to_string(), graph.num_nodes().to_string()),
        ("relations".to_string(), graph.num_relations().to_string()),
        ("node_types".to_string(), graph.num_node_types().to_string()),
        ("name".to_string(), graph.name.clone()),
    ]
    .into_iter()
    .collect();
    safetensors::serialize(views, Some(meta))
        .map_err(|e| RuntimeError::Internal(format!("cannot serialise the graph: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Relation;

    #[test]
    fn exported_graph_reads_back() {
        let g = HeteroGraph {
            name: "t".into(),
            node_types: vec!["a".into(), "b".into()],
            type_offsets: vec![0, 2, 3],
            relations: vec![Relation { name: "r".into(), src_type: None, dst_type: None }],
            src: vec![0, 2],
            dst: vec![1, 1],
            rel: vec![0, 0],
            base_relations: 1,
            ..HeteroGraph::default()
        };
        let bytes = graph_to_safetensors(&g).expect("export");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("parse");
        let src = st.tensor("src").expect("src");
        assert_eq!(src.shape(), &[2]);
        let vals: Vec<i64> = src
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        assert_eq!(vals, vec![0, 2]);
        let nt = st.tensor("node_type").expect("node_type");
        let types: Vec<i64> = nt
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        assert_eq!(types, vec![0, 0, 1]);
    }
}
