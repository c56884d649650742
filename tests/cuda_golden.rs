//! Golden CUDA for the zoo: each `tests/filetests/cuda/*.rgnn` names a zoo model (`// file:`,
//! relative to itself) and optional parameter overrides (`// params: heads=4`); the snapshot in
//! `tests/snapshots/` is the CUDA generated for it (default graph sizes, every optimisation on,
//! SIMT GEMMs) with the fixed helpers (`common.cuh`, `gemm.cuh`) replaced by a marker line.
//! Generation is deterministic, so any change to the generated code shows up here for review.
//! Re-bless with `INSTA_UPDATE=always cargo test --test cuda_golden` and review the diff.

use pigeon::codegen;

fn header_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(key)).map(str::trim)
}

#[test]
fn golden_cuda() {
    insta::glob!("filetests/cuda/*.rgnn", |path| {
        let text = std::fs::read_to_string(path).expect("read");
        assert!(text.starts_with("// test: cuda"), "{}: missing `// test: cuda`", path.display());
        let file = header_value(&text, "// file:").expect("a `// file:` line");
        let params: Vec<(String, i64)> = header_value(&text, "// params:")
            .unwrap_or("")
            .split_whitespace()
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("params are k=v");
                (k.to_string(), v.parse().expect("integer param"))
            })
            .collect();
        let model = path.parent().expect("a folder").join(file);
        let src = pigeon::read_source(&model).expect("the zoo model");
        let (_, compiled) = pigeon::compile_plan(
            &src,
            None,
            &params,
            &pigeon::default_stats(),
            &pigeon::passes::Options::default(),
            None,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", model.display()));
        let plan = compiled.plan.expect("a plan");
        let program = codegen::generate(&plan, &codegen::Options::default())
            .unwrap_or_else(|e| panic!("{}: {e}", model.display()));
        assert!(program.source.starts_with(&codegen::banner(&plan.name)));
        let kernels = program
            .source
            .replacen(codegen::COMMON_CUH, "// (cuda/common.cuh)\n", 1)
            .replacen(codegen::GEMM_CUH, "// (cuda/gemm.cuh)\n", 1);
        assert!(kernels.len() < program.source.len(), "the helpers are inlined");
        for k in &program.kernels {
            assert!(
                kernels.contains(&format!("void {}(", k.name))
                    || kernels.contains(&format!(" {}(", k.name))
            );
        }
        insta::assert_snapshot!(kernels);
    });
}
