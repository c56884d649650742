//! An application that embeds a model compiled at build time (see `build.rs`): it parses the
//! embedded plan, hands the embedded PTX to the CUDA back end (so no NVRTC is needed), loads a
//! graph and runs the model on GPU 0, or on the CPU back end when there is no GPU.
//!
//! `cargo run -p pigeon-embedded-example --release -- rdf:../shared/datasets/aifb`

use anyhow::{anyhow, Context, Result};
use pigeon_runtime::backend::Backend;

const MODULE: &str = include_str!(concat!(env!("OUT_DIR"), "/model.ir"));
const PLAN: &str = include_str!(concat!(env!("OUT_DIR"), "/model.plan"));
const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/model.ptx"));

fn main() -> Result<()> {
    let spec = std::env::args().nth(1).ok_or_else(|| anyhow!("usage: embedded GRAPH_SPEC"))?;
    let module = pigeon_ir::parse::parse_module(MODULE)
        .map_err(|e| anyhow!("the embedded IR does not parse: {e:?}"))?;
    let plan = pigeon_ir::plan_parse::parse_plan(PLAN)
        .map_err(|e| anyhow!("the embedded plan does not parse: {e:?}"))?;
    let graph = pigeon_runtime::load_graph(&spec)?;
    let (r, t) = (graph.num_relations(), graph.num_node_types());
    let weights = pigeon_runtime::weights::WeightStore::try_init(&module, r, t, 0)?;
    let (inputs, _) = pigeon_runtime::bind::bind_inputs(&module, &graph, 0)?;
    let backend: Box<dyn Backend> =
        match pigeon_runtime::cuda::CudaBackend::new(0, Default::default()) {
            Ok(cuda) => {
                if !PTX.is_empty() {
                    cuda.preload_ptx(&plan, PTX).context("loading the embedded PTX")?;
                }
                println!("running on {} ({})", cuda.device().name, cuda.device().arch);
                Box::new(cuda)
            }
            Err(e) => {
                println!("no GPU ({e}); running on the CPU");
                Box::new(pigeon_runtime::cpu::CpuBackend::default())
            }
        };
    let run = backend.execute(&plan, &graph, &inputs, &weights)?;
    for (name, t) in &run.outputs {
        println!("{name}: {} x {}, sum {:.6e}", t.rows, t.shape, t.sum());
    }
    println!("kernels {:.3} ms", run.profile.kernels_total().as_secs_f64() * 1e3);
    Ok(())
}
