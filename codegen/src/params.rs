//! Kernel parameters: the list a generated kernel takes (in the order of first use), their C
//! names, and the signature. Which buffers are read-only in a kernel decides their C type:
//! temps that share a slot share one device allocation, so a buffer is `const float*
//! __restrict__` only when no buffer of its storage is written by the same kernel.

use crate::spec::{GraphArray, Param};
use pigeon_ir::plan::{BufferId, Plan, RowSpace};
use pigeon_ir::{Endpoint, EntityId};
use std::collections::HashSet;

/// The C name of a parameter.
pub fn param_name(p: Param) -> String {
    match p {
        Param::Buffer(b) => format!("b{}", b.index()),
        Param::Array(a) => array_name(a),
        Param::Count(s) => count_name(s),
        Param::GemmOrder => "order".into(),
        Param::GemmTiles => "tiles".into(),
    }
}

fn ep(e: Endpoint) -> &'static str {
    match e {
        Endpoint::Src => "src",
        Endpoint::Dst => "dst",
    }
}

/// The C name of a graph array.
pub fn array_name(a: GraphArray) -> String {
    match a {
        GraphArray::Src => "src".into(),
        GraphArray::Dst => "dst".into(),
        GraphArray::Rel => "rel".into(),
        GraphArray::NodeType => "node_type".into(),
        GraphArray::CsrOffsets => "csr_offsets".into(),
        GraphArray::CsrEdges => "csr_edges".into(),
        GraphArray::CompactNode(e) => format!("compact_{}_node", ep(e)),
        GraphArray::CompactRel(e) => format!("compact_{}_rel", ep(e)),
        GraphArray::CompactEdgeRow(e) => format!("compact_{}_edge_row", ep(e)),
        GraphArray::RelationType(e) => format!("rel_{}_type", ep(e)),
    }
}

/// The C name of a row count.
pub fn count_name(s: RowSpace) -> String {
    match s {
        RowSpace::Nodes => "n_nodes".into(),
        RowSpace::Edges => "n_edges".into(),
        RowSpace::Compact(e) => format!("n_compact_{}", ep(e)),
        RowSpace::Relations => "n_relations".into(),
        RowSpace::NodeTypes => "n_ntypes".into(),
        RowSpace::One => "n_one".into(),
    }
}

/// The parameters of one kernel, collected as code generation uses them.
#[derive(Clone, Debug)]
pub struct Params<'p> {
    plan: &'p Plan,
    list: Vec<Param>,
    /// Storages (slot or buffer) written by the kernel.
    written: HashSet<Storage>,
}

/// A device allocation: temps with a slot share one.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
enum Storage {
    Slot(u32),
    Buffer(BufferId),
}

fn storage(plan: &Plan, b: BufferId) -> Storage {
    match plan.buffers.get(b).and_then(|buf| buf.slot) {
        Some(s) => Storage::Slot(s),
        None => Storage::Buffer(b),
    }
}

impl<'p> Params<'p> {
    /// An empty list for a kernel of `plan` that writes `written` buffers.
    pub fn new(plan: &'p Plan, written: impl IntoIterator<Item = BufferId>) -> Self {
        let written = written.into_iter().map(|b| storage(plan, b)).collect();
        Self { plan, list: Vec::new(), written }
    }

    /// Adds `p` (once) and returns its C name.
    pub fn add(&mut self, p: Param) -> String {
        if !self.list.contains(&p) {
            self.list.push(p);
        }
        param_name(p)
    }

    /// Buffer `b`'s C name.
    pub fn buffer(&mut self, b: BufferId) -> String {
        self.add(Param::Buffer(b))
    }

    /// Graph array `a`'s C name.
    pub fn array(&mut self, a: GraphArray) -> String {
        self.add(Param::Array(a))
    }

    /// The row count of `s`'s C name.
    pub fn count(&mut self, s: RowSpace) -> String {
        self.add(Param::Count(s))
    }

    /// Whether buffer `b` may be read through a read-only, non-aliased pointer.
    pub fn is_read_only(&self, b: BufferId) -> bool {
        !self.written.contains(&storage(self.plan, b))
    }

    /// The C parameter list, in order.
    pub fn signature(&self) -> String {
        self.list
            .iter()
            .map(|&p| {
                let ty = match p {
                    Param::Buffer(b) if self.is_read_only(b) => "const float* __restrict__",
                    Param::Buffer(_) => "float*",
                    Param::Array(_) | Param::GemmOrder | Param::GemmTiles => {
                        "const unsigned* __restrict__"
                    }
                    Param::Count(_) => "unsigned",
                };
                format!("{ty} {}", param_name(p))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The parameters, in order.
    pub fn into_list(self) -> Vec<Param> {
        self.list
    }
}
