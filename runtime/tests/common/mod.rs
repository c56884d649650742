//! Fixtures shared by the back-end tests of the runtime crate.

use pigeon_runtime::graph::Relation;
use pigeon_runtime::HeteroGraph;

/// A hand-made graph: 7 nodes of 3 types (4, 2, 1), 8 edges over 3 relations (r2 has none), a
/// multi-edge (0 -> 2 twice in r0), and nodes 4 to 6 (types b and c) without incoming edges.
pub fn hand_graph() -> HeteroGraph {
    let rel = |n: &str| Relation { name: n.into(), src_type: None, dst_type: None };
    HeteroGraph {
        name: "hand".into(),
        node_types: vec!["a".into(), "b".into(), "c".into()],
        type_offsets: vec![0, 4, 6, 7],
        relations: vec![rel("r0"), rel("r1"), rel("r2")],
        src: vec![0, 0, 1, 3, 2, 4, 5, 1],
        dst: vec![2, 2, 1, 2, 0, 3, 3, 2],
        rel: vec![0, 0, 0, 1, 1, 1, 0, 1],
        base_relations: 3,
        ..HeteroGraph::default()
    }
}
