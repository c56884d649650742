#!/usr/bin/env bash
# ptxas resource report (registers, spills, shared memory) of generated CUDA files: compiles
# each distinct FILE.cu (or every *.cu of a DIR) with NVRTC for each ARCH and prints one line
# per kernel. Exits 1 when any kernel spills. A development aid for the GEMM template.
#
# usage: scripts/ptxas-report.sh [--arch sm_80,sm_90] FILE.cu|DIR...
# e.g.:  PIGEON_GEMM_DUMP=/tmp/g cargo test -p pigeon-codegen --test gemm && scripts/ptxas-report.sh /tmp/g
set -euo pipefail
archs="sm_80,sm_90"
if [[ "${1:-}" == "--arch" ]]; then archs="$2"; shift 2; fi
py="${PIGEON_PYTHON:-/work/cuda-venv/bin/python}"
here="$(cd "$(dirname "$0")" && pwd)"
files=()
for a in "$@"; do
    if [[ -d "$a" ]]; then files+=("$a"/*.cu); else files+=("$a"); fi
done
declare -A seen
spills=0
for f in "${files[@]}"; do
    sum=$(md5sum < "$f" | cut -d' ' -f1)
    [[ -n "${seen[$sum]:-}" ]] && continue
    seen[$sum]=1
    for arch in ${archs//,/ }; do
        out=$("$py" "$here/nvrtc-compile.py" "$f" --arch "$arch" --ptxas 2>&1) || {
            echo "FAILED $f ($arch)"; echo "$out"; exit 1; }
        # "Compiling entry function 'k' for 'sm_90'" / "N bytes spill stores, M bytes spill loads"
        # / "Used R registers, ..." -> one line per kernel.
        report=$(echo "$out" | awk -v file="$(basename "$f")" -v arch="$arch" '
            /Compiling entry function/ { match($0, /'"'"'[^'"'"']+'"'"'/); k = substr($0, RSTART + 1, RLENGTH - 2) }
            /spill stores/ { st = $5; ld = $9 }
            /Used [0-9]+ registers/ { r = $0; sub(/.*Used /, "", r); sub(/ registers.*/, "", r);
                sm = $0; sub(/.* ([0-9]+) bytes smem.*/, "", sm);
                match($0, /[0-9]+ bytes smem/); smem = substr($0, RSTART, RLENGTH - 11);
                printf "%-6s %-28s %-40s regs %3d  spill st %s ld %s  smem %s\n", arch, file, k, r, st, ld, smem }')
        echo "$report"
        if echo "$report" | grep -qvE "spill st 0 ld 0"; then spills=1; fi
    done
done
if [[ $spills -ne 0 ]]; then echo "SPILLS FOUND"; exit 1; fi
echo "no spills"
