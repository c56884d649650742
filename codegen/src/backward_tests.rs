//! Tests of the backward elements: the CUDA of a plan holding every one of them
//! (`fixtures/backward.plan`: weight gradients in all four forms, a GEMM adding into source
//! rows, derivative statements in row, edge-parallel and node-parallel traversals) as a
//! snapshot, with the fixed helpers replaced by marker lines; and the refusal of the one
//! element the templates do not implement.

use crate::{generate, CodegenError, Options, COMMON_CUH, GEMM_CUH, GRAD_CUH, WGRAD_CUH};
use pigeon_ir::parse_plan;

/// The fixture plan of every backward element.
pub const FIXTURE: &str = include_str!("fixtures/backward.plan");

/// The generated CUDA of plan `text`, helpers replaced by `// <name>` lines.
fn check(text: &str) -> Result<String, CodegenError> {
    let plan = parse_plan(text).map_err(|e| CodegenError::Internal(format!("{e}")))?;
    let program = generate(&plan, &Options::default())?;
    let mut source = program.source;
    for (name, helper) in [
        ("common.cuh", COMMON_CUH),
        ("gemm.cuh", GEMM_CUH),
        ("wgrad.cuh", WGRAD_CUH),
        ("grad.cuh", GRAD_CUH),
    ] {
        source = source.replace(helper, &format!("// <{name}>\n"));
    }
    let launches: Vec<String> = program
        .kernels
        .iter()
        .map(|k| format!("// {}: {:?}, block {}, {:?}", k.name, k.grid, k.block, k.segmentation))
        .collect();
    Ok(format!("{}\n{source}", launches.join("\n")))
}

#[test]
fn every_backward_element_generates() {
    let got = check(FIXTURE).unwrap_or_else(|e| panic!("{e}"));
    for name in ["wgrad_grads_0", "wgrad_grads_3", "gemm_grads_4", "traversal_grads_7"] {
        assert!(got.contains(&format!(" {name}(")), "no kernel {name}");
    }
    insta::assert_snapshot!("backward_fixture", got);
}

#[test]
fn per_relation_max_grad_is_refused_with_the_reason() {
    let text = "plan p()\n\
        buffer b0 \"x\": edges [] f32 input \"x\"\n\
        buffer b1 \"dy\": nodes [] f32 input \"dy\"\n\
        buffer b2 \"dx\": edges [] f32 output \"dx\"\n\
        layouts in_csr\n\
        k0 = traversal node_parallel {\n\
            r0 = edge load b0 this : []\n\
            r1 = edge load b1 dst : []\n\
            r2 = edge max_grad per_relation r0, r1 : []\n\
            r3 = edge store b2 r2 write : []\n\
        }\n\
        output \"dx\" = b2\n";
    match check(text) {
        Err(CodegenError::Unsupported(m)) => {
            assert!(m.contains("r2") && m.contains("max_grad per_relation"), "{m}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
