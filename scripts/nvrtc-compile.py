#!/usr/bin/env python3
"""Compile a CUDA C++ file to PTX with NVRTC (ctypes, no GPU needed) and optionally run ptxas
for a resource report. A development aid: pigeon's own path is `pigeon compile --emit ptx`.

usage: nvrtc-compile.py FILE.cu [--arch sm_90] [--ptxas] [-o OUT.ptx]
Finds libnvrtc.so.12 in the pip package nvidia-cuda-nvrtc-cu12 (or $PIGEON_NVRTC), and ptxas in
nvidia-cuda-nvcc-cu12.
"""
import argparse, ctypes, glob, os, subprocess, sys, sysconfig, tempfile

def find(pattern):
    roots = [sysconfig.get_paths()["purelib"]] + sys.path
    for r in roots:
        hits = sorted(glob.glob(os.path.join(r, pattern)))
        if hits:
            return hits[-1]
    return None

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--ptxas", action="store_true")
    ap.add_argument("-o", "--out")
    a = ap.parse_args()
    lib = os.environ.get("PIGEON_NVRTC") or find("nvidia/cuda_nvrtc/lib/libnvrtc.so*[0-9]")
    if not lib:
        sys.exit("libnvrtc not found: pip install nvidia-cuda-nvrtc-cu12==12.9.*")
    nvrtc = ctypes.CDLL(lib)
    src = open(a.file, "rb").read()
    prog = ctypes.c_void_p()
    if nvrtc.nvrtcCreateProgram(ctypes.byref(prog), src, a.file.encode(), 0, None, None):
        sys.exit("nvrtcCreateProgram failed")
    opts = [f"--gpu-architecture=compute_{a.arch[3:]}".encode(), b"--std=c++17", b"-default-device"]
    arr = (ctypes.c_char_p * len(opts))(*opts)
    rc = nvrtc.nvrtcCompileProgram(prog, len(opts), arr)
    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetProgramLog(prog, log)
    if log.value.strip():
        print(log.value.decode(), file=sys.stderr)
    if rc:
        sys.exit(f"NVRTC failed ({rc})")
    nvrtc.nvrtcGetPTXSize(prog, ctypes.byref(size))
    ptx = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetPTX(prog, ptx)
    out = a.out or tempfile.mktemp(suffix=".ptx")
    open(out, "wb").write(ptx.value)
    print(f"ok: {out}")
    if a.ptxas:
        ptxas = find("nvidia/cuda_nvcc/bin/ptxas")
        if not ptxas:
            sys.exit("ptxas not found: pip install nvidia-cuda-nvcc-cu12==12.9.*")
        r = subprocess.run([ptxas, f"-arch={a.arch}", "-v", out, "-o", os.devnull],
                           capture_output=True, text=True)
        print(r.stdout + r.stderr)
        sys.exit(r.returncode)

main()
