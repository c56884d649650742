//! Compiles `examples/rgcn.rgnn` at build time: the kernel plan and, where NVRTC is available
//! on the build machine, PTX for sm_80 (which the driver also runs on newer GPUs). The program
//! embeds them; with PTX embedded it needs only the NVIDIA driver at run time.

use std::error::Error;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let model = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../rgcn.rgnn");
    println!("cargo:rerun-if-changed={}", model.display());
    println!("cargo:rerun-if-env-changed=PIGEON_ARCH");
    let arch = std::env::var("PIGEON_ARCH").unwrap_or_else(|_| "sm_80".into());
    let base = pigeon::build::Request::new(&model);
    let artifacts = match pigeon::build::compile(&base.clone().with_ptx(&arch)) {
        Ok(a) => a,
        Err(e) => {
            // No NVRTC here: embed the plan only; the program compiles the CUDA at run time.
            println!("cargo:warning=no PTX embedded ({e}); NVRTC will be needed at run time");
            pigeon::build::compile(&base)?
        }
    };
    // Fixed names for `include_str!`: the IR (inputs and weights bind by it), the plan, and the
    // PTX (empty when none was compiled).
    std::fs::write(out.join("model.ir"), pigeon::ir::text::print(&artifacts.module))?;
    std::fs::write(out.join("model.plan"), pigeon::ir::plan_text::print_plan(&artifacts.plan))?;
    let ptx = artifacts.ptx.map(|(_, ptx)| ptx).unwrap_or_default();
    std::fs::write(out.join("model.ptx"), ptx)?;
    Ok(())
}
