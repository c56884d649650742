//! Evaluation of dimension expressions under concrete parameter values: exact division, no
//! overflow, and positive extents.

use crate::ast::{BinOp, DimExpr, DimKind};
use crate::diag::Diagnostic;
use pigeon_ir::Shape;
use std::collections::HashMap;

/// The value of `d` given the parameters, or an error pointing into `d`.
pub(crate) fn eval(d: &DimExpr, params: &HashMap<String, i64>) -> Result<i64, Diagnostic> {
    match &d.kind {
        DimKind::Int(v) => Ok(*v),
        DimKind::Param(p) => params
            .get(&p.name)
            .copied()
            .ok_or_else(|| Diagnostic::error(format!("unknown parameter `{}`", p.name), p.span)),
        DimKind::Binary(op, a, b) => {
            let (x, y) = (eval(a, params)?, eval(b, params)?);
            let r = match op {
                BinOp::Add => x.checked_add(y),
                BinOp::Sub => x.checked_sub(y),
                BinOp::Mul => x.checked_mul(y),
                BinOp::Div => {
                    if y == 0 {
                        return Err(Diagnostic::error("division by zero in a dimension", d.span)
                            .with_label(format!("`{}` is 0 here", crate::dump::dim_text(b))));
                    }
                    if x % y != 0 {
                        return Err(Diagnostic::error(
                            format!("{x} / {y} does not divide exactly"),
                            d.span,
                        )
                        .with_label(format!("{x} is not a multiple of {y}"))
                        .with_note("dimensions are integers; `/` must divide exactly"));
                    }
                    x.checked_div(y)
                }
                BinOp::MatMul => None,
            };
            r.ok_or_else(|| Diagnostic::error("dimension arithmetic overflows", d.span))
        }
    }
}

/// The most elements a row may hold (so that element counts never overflow downstream).
pub(crate) const MAX_ELEMENTS: usize = 1 << 31;

/// Whether a row of `shape` holds at most [`MAX_ELEMENTS`] elements (without overflowing).
pub(crate) fn fits(shape: &Shape) -> bool {
    let numel = shape.dims().iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    matches!(numel, Some(n) if n <= MAX_ELEMENTS)
}

/// The shape `[d1, d2, ...]`, every extent positive.
pub(crate) fn eval_shape(
    ds: &[DimExpr],
    params: &HashMap<String, i64>,
) -> Result<Shape, Vec<Diagnostic>> {
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for d in ds {
        match eval(d, params) {
            Ok(v) if v > 0 => out.push(usize::try_from(v).unwrap_or(usize::MAX)),
            Ok(v) => errs.push(
                Diagnostic::error(format!("dimension must be positive, got {v}"), d.span)
                    .with_label(format!("this is {v}")),
            ),
            Err(e) => errs.push(e),
        }
    }
    if errs.is_empty() && !fits(&Shape(out.clone())) {
        let span = ds.first().map_or(Default::default(), |f| f.span.to(ds[ds.len() - 1].span));
        errs.push(Diagnostic::error(
            format!("shape too large (more than {MAX_ELEMENTS} elements per row)"),
            span,
        ));
    }
    if errs.is_empty() {
        Ok(Shape(out))
    } else {
        Err(errs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(src: &str, params: &[(&str, i64)], expect: &str) {
        let text = format!("model m() {{ input x: node[{src}]; output x; }}");
        let file = match crate::parse::parse_text(&text) {
            Ok(f) => f,
            Err(d) => panic!("{}", d.render("t", &text)),
        };
        let ds = match &file.models[0].stmts[0].kind {
            crate::ast::StmtKind::Input { shape, .. } => shape.clone(),
            _ => Vec::new(),
        };
        let params: HashMap<String, i64> =
            params.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let got = match eval_shape(&ds, &params) {
            Ok(s) => s.to_string(),
            Err(es) => es.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("; "),
        };
        assert_eq!(got, expect);
    }

    #[test]
    fn arithmetic_and_precedence() {
        check("a * b + 1, (a + 1) * 2, a / 2 - 1", &[("a", 4), ("b", 3)], "[13, 10, 1]");
    }

    #[test]
    fn errors() {
        check("64 / 3, a - 4, 2 / (a - a)", &[("a", 4)], "64 / 3 does not divide exactly; dimension must be positive, got 0; division by zero in a dimension");
        check("9223372036854775807 + 1", &[], "dimension arithmetic overflows");
        check("65536, 32768", &[], "[65536, 32768]");
        check("65536, 32769", &[], "shape too large (more than 2147483648 elements per row)");
        check(
            "4294967296, 4294967296, 4294967296",
            &[],
            "shape too large (more than 2147483648 elements per row)",
        );
    }
}
