//! Index expressions: how an iteration row of one row space finds its row in a buffer of
//! another (`RowIndex`, `Select`), as C expressions over the graph arrays, and which element of
//! a broadcast operand an output element reads. Mirrors the CPU back end's `index.rs` rule for
//! rule; an index the CPU back end rejects is rejected here too.

use crate::error::{internal, Result};
use crate::params::Params;
use crate::spec::GraphArray;
use pigeon_ir::plan::{RowIndex, RowSpace};
use pigeon_ir::{shape, Endpoint, Select, Shape};

/// The row of a `target` buffer that iteration row `row` (a C expression) of `space` reads by
/// `index`, as a C expression of type `unsigned`; graph arrays it reads are added to `params`.
pub fn row_expr(
    params: &mut Params,
    index: RowIndex,
    space: RowSpace,
    target: RowSpace,
    row: &str,
) -> Result<String> {
    let mismatch =
        || internal(format!("a {space:?} row cannot read a {target:?} buffer by {index:?}"));
    match index {
        RowIndex::This | RowIndex::Select(Select::Same) => {
            if target == RowSpace::One {
                Ok("0u".into())
            } else if target == space {
                Ok(row.to_string())
            } else {
                Err(mismatch())
            }
        }
        RowIndex::Node(ep) => match (space, target) {
            (RowSpace::Edges, RowSpace::Nodes) => {
                Ok(format!("{}[{row}]", params.array(endpoint_array(ep))))
            }
            (RowSpace::Compact(c), RowSpace::Nodes) if c == ep => {
                Ok(format!("{}[{row}]", params.array(GraphArray::CompactNode(ep))))
            }
            _ => Err(mismatch()),
        },
        RowIndex::EdgeToCompact(ep) => match (space, target) {
            (RowSpace::Edges, RowSpace::Compact(c)) if c == ep => {
                Ok(format!("{}[{row}]", params.array(GraphArray::CompactEdgeRow(ep))))
            }
            _ => Err(mismatch()),
        },
        RowIndex::Select(sel) => select_expr(params, sel, space, target, row)?.ok_or_else(mismatch),
    }
}

fn endpoint_array(ep: Endpoint) -> GraphArray {
    match ep {
        Endpoint::Src => GraphArray::Src,
        Endpoint::Dst => GraphArray::Dst,
    }
}

/// The slice a `space` row selects by `sel` in a weight-like buffer with rows `target`, or
/// `None` when the selection does not apply.
pub fn select_expr(
    params: &mut Params,
    sel: Select,
    space: RowSpace,
    target: RowSpace,
    row: &str,
) -> Result<Option<String>> {
    Ok(Some(match (sel, space, target) {
        (Select::Same, ..) => return Ok(None),
        (_, _, RowSpace::One) => "0u".into(),
        (Select::Relation, RowSpace::Edges, RowSpace::Relations) => {
            format!("{}[{row}]", params.array(GraphArray::Rel))
        }
        (Select::Relation, RowSpace::Compact(c), RowSpace::Relations) => {
            format!("{}[{row}]", params.array(GraphArray::CompactRel(c)))
        }
        (Select::Relation, RowSpace::Relations, RowSpace::Relations)
        | (Select::NodeType, RowSpace::NodeTypes, RowSpace::NodeTypes) => row.to_string(),
        (Select::NodeType, RowSpace::Nodes, RowSpace::NodeTypes) => {
            format!("{}[{row}]", params.array(GraphArray::NodeType))
        }
        (Select::SrcType | Select::DstType, RowSpace::Edges, RowSpace::NodeTypes) => {
            let ep = select_endpoint(sel);
            let types = params.array(GraphArray::NodeType);
            format!("{types}[{}[{row}]]", params.array(endpoint_array(ep)))
        }
        (Select::SrcType | Select::DstType, RowSpace::Compact(c), RowSpace::NodeTypes) => {
            let ep = select_endpoint(sel);
            if ep == c {
                let types = params.array(GraphArray::NodeType);
                format!("{types}[{}[{row}]]", params.array(GraphArray::CompactNode(c)))
            } else {
                let types = params.array(GraphArray::RelationType(ep));
                format!("{types}[{}[{row}]]", params.array(GraphArray::CompactRel(c)))
            }
        }
        (Select::SrcType | Select::DstType, RowSpace::Relations, RowSpace::NodeTypes) => {
            format!("{}[{row}]", params.array(GraphArray::RelationType(select_endpoint(sel))))
        }
        _ => return Ok(None),
    }))
}

fn select_endpoint(sel: Select) -> Endpoint {
    if sel == Select::SrcType {
        Endpoint::Src
    } else {
        Endpoint::Dst
    }
}

/// The element of a row of shape `from` that element `flat` (a C expression) of a row of shape
/// `out` reads under broadcasting (axes aligned from the front, as `pigeon_ir::shape`), as a C
/// expression; `flat` itself when the shapes have the same elements, `0` for a scalar.
pub fn broadcast_expr(from: &Shape, out: &Shape, flat: &str) -> String {
    if from.numel() == out.numel() {
        return flat.to_string();
    }
    if from.numel() == 1 {
        return "0".into();
    }
    let rank = out.rank();
    let strides = shape::broadcast_strides(from, rank);
    let dims = out.dims();
    let mut terms = Vec::new();
    let mut inner = 1usize;
    for axis in (0..rank).rev() {
        if strides[axis] != 0 && dims[axis] > 1 {
            let mut t = if inner == 1 { flat.to_string() } else { format!("({flat} / {inner})") };
            if axis > 0 {
                t = format!("({t} % {})", dims[axis]);
            }
            if strides[axis] != 1 {
                t = format!("{t} * {}", strides[axis]);
            }
            terms.push(t);
        }
        inner *= dims[axis];
    }
    if terms.is_empty() {
        "0".into()
    } else {
        terms.reverse();
        terms.join(" + ")
    }
}

/// A C `float` literal for `v` (exact to f32 rounding, infinities and NaN included).
pub fn float_literal(v: f64) -> String {
    let f = v as f32;
    if f.is_nan() {
        "__int_as_float(0x7fc00000)".into()
    } else if f.is_infinite() {
        if f > 0.0 { "__int_as_float(0x7f800000)" } else { "__int_as_float(0xff800000)" }.into()
    } else {
        format!("{f:e}f")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pigeon_ir::plan::Plan;

    fn check_broadcast(from: &[usize], out: &[usize], expect: &str) {
        let (from, out) = (Shape(from.to_vec()), Shape(out.to_vec()));
        let got = broadcast_expr(&from, &out, "i");
        assert_eq!(got, expect);
        // Evaluate the expression for every element against the shape module's offsets.
        let strides = shape::broadcast_strides(&from, out.rank());
        for flat in 0..out.numel() {
            let (mut rest, mut want) = (flat, 0);
            for axis in (0..out.rank()).rev() {
                want += (rest % out.dims()[axis]) * strides[axis];
                rest /= out.dims()[axis];
            }
            assert_eq!(eval(&got, flat), want, "{got} at {flat}");
        }
    }

    /// Evaluates the tiny expressions `broadcast_expr` writes: sums of `(i / a) % b * c`.
    fn eval(expr: &str, i: usize) -> usize {
        expr.split(" + ")
            .map(|term| {
                let t = term.replace(['(', ')'], "");
                let mut toks = t.split(' ');
                let mut v = match toks.next() {
                    Some("i") => i,
                    Some(n) => n.parse().unwrap_or(usize::MAX),
                    None => 0,
                };
                while let (Some(op), Some(n)) = (toks.next(), toks.next()) {
                    let n: usize = n.parse().unwrap_or(1);
                    v = match op {
                        "/" => v / n,
                        "%" => v % n,
                        "*" => v * n,
                        _ => usize::MAX,
                    };
                }
                v
            })
            .sum()
    }

    #[test]
    fn broadcast_expressions_match_the_shape_rules() {
        check_broadcast(&[4, 16], &[4, 16], "i");
        check_broadcast(&[], &[4, 16], "0");
        check_broadcast(&[4, 1], &[4, 16], "(i / 16)");
        check_broadcast(&[1, 16], &[4, 16], "(i % 16)");
        check_broadcast(&[4], &[4, 8], "(i / 8)");
        check_broadcast(&[2, 1, 3], &[2, 5, 3], "(i / 15) * 3 + (i % 3)");
    }

    #[test]
    fn row_expressions_name_their_arrays() {
        let plan = Plan::default();
        let mut p = Params::new(&plan, []);
        let e =
            row_expr(&mut p, RowIndex::Node(Endpoint::Src), RowSpace::Edges, RowSpace::Nodes, "e");
        assert_eq!(e, Ok("src[e]".to_string()));
        let e = row_expr(
            &mut p,
            RowIndex::Select(Select::DstType),
            RowSpace::Compact(Endpoint::Src),
            RowSpace::NodeTypes,
            "i",
        );
        assert_eq!(e, Ok("rel_dst_type[compact_src_rel[i]]".to_string()));
        let bad = row_expr(&mut p, RowIndex::This, RowSpace::Edges, RowSpace::Nodes, "e");
        assert!(matches!(bad, Err(crate::CodegenError::Internal(_))));
        assert_eq!(
            p.signature(),
            "const unsigned* __restrict__ src, const unsigned* __restrict__ rel_dst_type, \
             const unsigned* __restrict__ compact_src_rel"
        );
    }

    #[test]
    fn float_literals_round_trip() {
        for v in [0.2, 1.0, -3.5e-7, 1e30, 0.0] {
            let lit = float_literal(v);
            let back: f32 = lit.trim_end_matches('f').parse().unwrap_or(f32::NAN);
            assert_eq!(back, v as f32, "{lit}");
        }
        assert!(float_literal(f64::NEG_INFINITY).contains("0xff800000"));
    }
}
