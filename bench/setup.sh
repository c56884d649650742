#!/usr/bin/env bash
# Sets up bench/.venv: the Python environment for bench/pyg_compare.py (PyTorch Geometric on the CPU).
#
# Everything comes from PyPI. Idempotent: a second run checks what is there and installs nothing new.
#
# About CUDA: PyPI has only one torch wheel for Linux x86_64, the CUDA build. It links CUDA
# dynamically (libtorch_cpu.so itself has DT_NEEDED libcudart.so.13 and libcupti.so.13;
# libtorch_cuda.so, loaded by `import torch`, needs cublas, cudnn, cusparse, cufft, nccl, nvrtc,
# nvshmem, ...), and those libraries come as separate PyPI packages (cuda-toolkit[...],
# nvidia-*-cu13). `pip install torch --no-deps` therefore installs, but `import torch` fails with
# "libcudart.so.13: cannot open shared object file" followed by "libcublasLt.so.*[0-9] not found".
# The CPU-only wheels (`+cpu`) live only on download.pytorch.org, which is not reachable here.
# So this script installs torch with its CUDA libraries (about 3 GB on disk); without a GPU torch
# runs on the CPU as usual (torch.cuda.is_available() is False). Only triton (the GPU compiler
# used by torch.compile, unused here) is left out.
#
# Usage: bash bench/setup.sh        (from anywhere; set PYTHON to choose the interpreter)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"
# The lent GPU machines have torch 2.11 + PyG 2.8.0.post1: the same versions here.
torch_spec="${TORCH_SPEC:-torch==2.11.*}"
pyg_spec="torch_geometric==2.8.*"

if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv"
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

if ! "$venv/bin/python" -c 'import torch' >/dev/null 2>&1; then
    echo "installing $torch_spec and its CUDA libraries (large download)"
    # torch's requirements without triton: resolve them with pip, then install torch itself.
    reqs=$("$venv/bin/python" - "$torch_spec" <<'PY'
import subprocess, sys, json, tempfile, os
spec = sys.argv[1]
with tempfile.TemporaryDirectory() as d:
    report = os.path.join(d, "r.json")
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "install",
                    "--dry-run", "--quiet", "--no-deps", "--ignore-installed",
                    "--report", report, spec], check=True)
    meta = json.load(open(report))["install"][0]["metadata"]
    print(meta["version"])
    for r in meta.get("requires_dist", []):
        if "extra ==" in r or r.startswith("triton"):
            continue
        print(r)
PY
)
    version=$(echo "$reqs" | head -n1)
    mapfile -t deps < <(echo "$reqs" | tail -n +2)
    "${pip[@]}" install --no-deps "torch==$version"
    "${pip[@]}" install "${deps[@]}"
fi

"${pip[@]}" install "$pyg_spec" safetensors numpy

echo
echo "installed in $venv:"
"$venv/bin/python" - <<'PY'
import importlib.metadata as md
import torch, torch_geometric, safetensors, numpy
for name in ["torch", "torch_geometric", "safetensors", "numpy"]:
    print(f"  {name:16} {md.version(name)}")
for opt in ["pyg_lib", "torch_scatter", "torch_sparse", "triton"]:
    try:
        print(f"  {opt:16} {md.version(opt)} (optional, changes PyG's code paths)")
    except md.PackageNotFoundError:
        print(f"  {opt:16} not installed")
print(f"  torch.cuda.is_available() = {torch.cuda.is_available()}, "
      f"threads = {torch.get_num_threads()}")
PY
