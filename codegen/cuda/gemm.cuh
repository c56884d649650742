// pigeon GEMM template: C[rows] (+)= epilogue(A[gather(rows)] x B[segment(rows)]). Fixed text
// included once per translation unit after common.cuh (codegen/cuda/gemm.cuh). Each generated
// kernel defines a functor F (see codegen/src/gemm.rs) and calls pg::gemm::run<Engine>(f, ...).
//
// F provides, all compile-time:
//   K, N, BATCH                  contraction extent, output width, batches (heads)
//   A_WIDTH, B_SLICE, B_BATCH    floats per A row, per B slice, between B batches (0: shared)
//   C_WIDTH                      floats per C row (BATCH * N)
//   TILE_N                       output columns per block: 16, 32 or 64
//   VEC_A, VEC_B, VEC_C          whether float4 accesses are legal (decided by the generator)
//   ACCUMULATE                   add into node rows (atomics) instead of writing
// and at run time: pointers a, b, c and
//   row(p)        iteration row id at position p (order[p], or p)
//   a_row(i)      A row of iteration row i (the gather)
//   out_row(i)    C row of iteration row i (i, or its destination or source node)
//   epilogue(i, col, v)   the fused post-processing of element col of row i
//
// Output element (i, bi, j) is sum_kk A[a_row(i) * A_WIDTH + bi * K + kk] *
// B[seg * B_SLICE + bi * B_BATCH + kk * N + j], stored at column bi * N + j.
//
// Block geometry. A block computes TILE_M = 64 positions of one tile (tiles[3 * blockIdx.x ..]:
// start, end, segment) by TILE_N columns of batch bi = blockIdx.y / N_TILES. Why these sizes:
// hidden sizes here are k = n = 64 and segments (relations, node types) hold a few hundred to
// tens of thousands of rows, so (1) 64 rows keep the padding of a segment's last tile small and
// give thousands of blocks on big graphs; (2) TILE_N = 64 covers the whole output row, so each
// gathered A row is read once; (3) the kernel is memory bound (k = 64: 2 flops per A byte
// loaded), so 256 threads with 16 accumulators each keep registers low and occupancy high to
// hide the gather latency, rather than chasing arithmetic intensity. K is consumed in steps of
// KT = min(32, K rounded up to 16) columns, copied with cp.async into two shared-memory stages
// so that the gathers of the next step overlap the multiplication of this one.
#ifndef PIGEON_GEMM_CUH
#define PIGEON_GEMM_CUH

namespace pg {
namespace gemm {

constexpr unsigned TILE_M = 64;
constexpr unsigned THREADS = 256;
constexpr unsigned MAX_KT = 32;
constexpr unsigned INVALID = 0xffffffffu;
typedef unsigned long long u64;

__host__ __device__ constexpr unsigned min_u(unsigned a, unsigned b) { return a < b ? a : b; }
__host__ __device__ constexpr unsigned div_up(unsigned a, unsigned b) { return (a + b - 1) / b; }

// f32 -> tf32 (round to nearest, ties away), as the .b32 register mma expects.
__device__ __forceinline__ unsigned to_tf32(float x) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}

// Two f32 -> one bf16x2 register: `lo` in bits 0..15 (the lower-indexed element), `hi` in
// 16..31 (cvt packs its first source into the upper half).
__device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

// SIMT: thread (tx, ty) = (tid % TX, tid / TX) owns rows ty * TM + i (i < TM) and columns
// tx * 4 + j (j < 4) of the tile: TX = TILE_N / 4, TY = 256 / TX, TM = 64 / TY.
template <unsigned TILE_N>
struct Simt {
    static constexpr unsigned AS_STRIDE = MAX_KT + 4;   // float4 rows, broadcast reads
    static constexpr unsigned BS_STRIDE = TILE_N + 4;
    static constexpr unsigned K_STEP = 4;
    static constexpr unsigned TX = TILE_N / 4, TY = THREADS / TX, TM = TILE_M / TY;

    float acc[TM][4];

    __device__ __forceinline__ void zero() {
#pragma unroll
        for (unsigned i = 0; i < TM; ++i)
#pragma unroll
            for (unsigned j = 0; j < 4; ++j) acc[i][j] = 0.0f;
    }

    template <unsigned KT>
    __device__ __forceinline__ void step(const float* As, const float* Bs) {
        const unsigned tx = threadIdx.x % TX, ty = threadIdx.x / TX;
#pragma unroll
        for (unsigned kk = 0; kk < KT; kk += 4) {
            float4 a[TM];
#pragma unroll
            for (unsigned i = 0; i < TM; ++i)
                a[i] = *reinterpret_cast<const float4*>(&As[(ty * TM + i) * AS_STRIDE + kk]);
#pragma unroll
            for (unsigned c = 0; c < 4; ++c) {
                const float4 b = *reinterpret_cast<const float4*>(&Bs[(kk + c) * BS_STRIDE + tx * 4]);
#pragma unroll
                for (unsigned i = 0; i < TM; ++i) {
                    const float av = c == 0 ? a[i].x : c == 1 ? a[i].y : c == 2 ? a[i].z : a[i].w;
                    acc[i][0] = fmaf(av, b.x, acc[i][0]);
                    acc[i][1] = fmaf(av, b.y, acc[i][1]);
                    acc[i][2] = fmaf(av, b.z, acc[i][2]);
                    acc[i][3] = fmaf(av, b.w, acc[i][3]);
                }
            }
        }
    }

    template <unsigned CS_STRIDE>
    __device__ __forceinline__ void stage(float* Cs) const {
        const unsigned tx = threadIdx.x % TX, ty = threadIdx.x / TX;
#pragma unroll
        for (unsigned i = 0; i < TM; ++i)
            *reinterpret_cast<float4*>(&Cs[(ty * TM + i) * CS_STRIDE + tx * 4]) =
                make_float4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
    }
};

// Warp tiling shared by the tensor-core engines: the 8 warps form a WM x WN grid, warp
// (wm, wn) = (w / WN, w % WN) owns rows wm * WTM .. + WTM and columns wn * WTN .. + WTN, as
// MI x NI mma tiles of 16 x 8.
template <unsigned TILE_N>
struct WarpGrid {
    static constexpr unsigned WN = TILE_N / 8 < 4 ? TILE_N / 8 : 4;
    static constexpr unsigned WM = (THREADS / 32) / WN;
    static constexpr unsigned WTM = TILE_M / WM, WTN = TILE_N / WN;
    static constexpr unsigned MI = WTM / 16, NI = WTN / 8;
};

// Accumulator fragment of m16n8 (PTX ISA "Matrix Fragments for mma.m16n8k8", same for
// m16n8k16), with g = lane >> 2, t = lane & 3:
//   c0: (g, 2t)   c1: (g, 2t + 1)   c2: (g + 8, 2t)   c3: (g + 8, 2t + 1)
template <unsigned TILE_N, unsigned CS_STRIDE, unsigned MI, unsigned NI>
__device__ __forceinline__ void stage_mma(const float (&acc)[MI][NI][4], float* Cs) {
    typedef WarpGrid<TILE_N> G;
    const unsigned w = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
    const unsigned r0 = (w / G::WN) * G::WTM, c0 = (w % G::WN) * G::WTN;
#pragma unroll
    for (unsigned mi = 0; mi < MI; ++mi)
#pragma unroll
        for (unsigned ni = 0; ni < NI; ++ni) {
            const unsigned r = r0 + mi * 16 + g, c = c0 + ni * 8 + 2 * t;
            *reinterpret_cast<float2*>(&Cs[r * CS_STRIDE + c]) =
                make_float2(acc[mi][ni][0], acc[mi][ni][1]);
            *reinterpret_cast<float2*>(&Cs[(r + 8) * CS_STRIDE + c]) =
                make_float2(acc[mi][ni][2], acc[mi][ni][3]);
        }
}

// The accumulators of the tensor-core engines (one m16n8 fragment per warp sub-tile), their
// zeroing and their staging into shared memory, shared by `Tf32` and `Bf16`.
template <unsigned TILE_N>
struct MmaAccumulators {
    typedef WarpGrid<TILE_N> G;
    float acc[G::MI][G::NI][4];

    __device__ __forceinline__ void zero() {
#pragma unroll
        for (unsigned mi = 0; mi < G::MI; ++mi)
#pragma unroll
            for (unsigned ni = 0; ni < G::NI; ++ni)
#pragma unroll
                for (unsigned e = 0; e < 4; ++e) acc[mi][ni][e] = 0.0f;
    }

    template <unsigned CS_STRIDE>
    __device__ __forceinline__ void stage(float* Cs) const {
        stage_mma<TILE_N, CS_STRIDE>(acc, Cs);
    }
};

// TF32 tensor cores: mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32. Shared memory holds
// f32 (cp.async copies bytes); fragments are rounded to tf32 as they are read. Fragments (PTX ISA, g = lane >> 2, t = lane & 3):
//   A (16 x 8, row): a0 (g, t)   a1 (g + 8, t)   a2 (g, t + 4)   a3 (g + 8, t + 4)
//   B (8 x 8, col):  b0 (t, g)   b1 (t + 4, g)
// Strides 36 and 72 make both fragment reads conflict-free: banks (4g + t) and (8t + g).
template <unsigned TILE_N>
struct Tf32 : MmaAccumulators<TILE_N> {
    typedef WarpGrid<TILE_N> G;
    using MmaAccumulators<TILE_N>::acc;
    static constexpr unsigned AS_STRIDE = MAX_KT + 4;
    static constexpr unsigned BS_STRIDE = TILE_N + 8;
    static constexpr unsigned K_STEP = 8;

    template <unsigned KT>
    __device__ __forceinline__ void step(const float* As, const float* Bs) {
        const unsigned w = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
        const unsigned r0 = (w / G::WN) * G::WTM, c0 = (w % G::WN) * G::WTN;
#pragma unroll
        for (unsigned kk = 0; kk < KT; kk += 8) {
            unsigned a[G::MI][4], b[G::NI][2];
#pragma unroll
            for (unsigned mi = 0; mi < G::MI; ++mi) {
                const float* p = &As[(r0 + mi * 16 + g) * AS_STRIDE + kk + t];
                a[mi][0] = to_tf32(p[0]);
                a[mi][1] = to_tf32(p[8 * AS_STRIDE]);
                a[mi][2] = to_tf32(p[4]);
                a[mi][3] = to_tf32(p[8 * AS_STRIDE + 4]);
            }
#pragma unroll
            for (unsigned ni = 0; ni < G::NI; ++ni) {
                const float* p = &Bs[(kk + t) * BS_STRIDE + c0 + ni * 8 + g];
                b[ni][0] = to_tf32(p[0]);
                b[ni][1] = to_tf32(p[4 * BS_STRIDE]);
            }
#pragma unroll
            for (unsigned mi = 0; mi < G::MI; ++mi)
#pragma unroll
                for (unsigned ni = 0; ni < G::NI; ++ni) {
                    float* d = acc[mi][ni];
                    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
                        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                        : "r"(a[mi][0]), "r"(a[mi][1]), "r"(a[mi][2]), "r"(a[mi][3]),
                          "r"(b[ni][0]), "r"(b[ni][1]));
                }
        }
    }
};

// BF16 tensor cores: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, f32 accumulation.
// Shared memory holds f32; fragments are packed to bf16x2 as they are read. Fragments (PTX
// ISA "Matrix Fragments for mma.m16n8k16 with floating point type", g = lane >> 2,
// t = lane & 3; each register holds two consecutive k, the lower one in the low half):
//   A (16 x 16, row): r0 (g, 2t..2t+1)  r1 (g + 8, 2t..)  r2 (g, 2t+8..)  r3 (g + 8, 2t+8..)
//   B (16 x 8, col):  r0 (2t..2t+1, g)  r1 (2t+8..2t+9, g)
// Strides 40 and TILE_N + 4 make the float2 A reads and scalar B reads conflict-free.
template <unsigned TILE_N>
struct Bf16 : MmaAccumulators<TILE_N> {
    typedef WarpGrid<TILE_N> G;
    using MmaAccumulators<TILE_N>::acc;
    static constexpr unsigned AS_STRIDE = MAX_KT + 8;
    static constexpr unsigned BS_STRIDE = TILE_N + 4;
    static constexpr unsigned K_STEP = 16;

    template <unsigned KT>
    __device__ __forceinline__ void step(const float* As, const float* Bs) {
        const unsigned w = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
        const unsigned r0 = (w / G::WN) * G::WTM, c0 = (w % G::WN) * G::WTN;
#pragma unroll
        for (unsigned kk = 0; kk < KT; kk += 16) {
            unsigned a[G::MI][4], b[G::NI][2];
#pragma unroll
            for (unsigned mi = 0; mi < G::MI; ++mi) {
                const float* p = &As[(r0 + mi * 16 + g) * AS_STRIDE + kk + 2 * t];
                const float2 x0 = *reinterpret_cast<const float2*>(p);
                const float2 x1 = *reinterpret_cast<const float2*>(p + 8 * AS_STRIDE);
                const float2 x2 = *reinterpret_cast<const float2*>(p + 8);
                const float2 x3 = *reinterpret_cast<const float2*>(p + 8 * AS_STRIDE + 8);
                a[mi][0] = pack_bf16(x0.x, x0.y);
                a[mi][1] = pack_bf16(x1.x, x1.y);
                a[mi][2] = pack_bf16(x2.x, x2.y);
                a[mi][3] = pack_bf16(x3.x, x3.y);
            }
#pragma unroll
            for (unsigned ni = 0; ni < G::NI; ++ni) {
                const float* p = &Bs[(kk + 2 * t) * BS_STRIDE + c0 + ni * 8 + g];
                b[ni][0] = pack_bf16(p[0], p[BS_STRIDE]);
                b[ni][1] = pack_bf16(p[8 * BS_STRIDE], p[9 * BS_STRIDE]);
            }
#pragma unroll
            for (unsigned mi = 0; mi < G::MI; ++mi)
#pragma unroll
                for (unsigned ni = 0; ni < G::NI; ++ni) {
                    float* d = acc[mi][ni];
                    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                        : "r"(a[mi][0]), "r"(a[mi][1]), "r"(a[mi][2]), "r"(a[mi][3]),
                          "r"(b[ni][0]), "r"(b[ni][1]));
                }
        }
    }
};

// Copies `BYTES` (4 or 16) from global `src` to shared `dst`, or zeros when `!ok`. On sm_80 and
// newer an asynchronous cp.async (zero-filled through src-size 0; completion by `copy_wait`),
// before that a plain load and store.
template <unsigned BYTES>
__device__ __forceinline__ void copy_async(float* dst, const float* src, bool ok) {
#if __CUDA_ARCH__ >= 800
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    const unsigned n = ok ? BYTES : 0u;
    if constexpr (BYTES == 16) {
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(d), "l"(src), "r"(n));
    } else {
        asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(d), "l"(src), "r"(n));
    }
#else
    if constexpr (BYTES == 16) {
        *reinterpret_cast<float4*>(dst) = ok ? __ldg(reinterpret_cast<const float4*>(src))
                                             : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    } else {
        *dst = ok ? __ldg(src) : 0.0f;
    }
#endif
}

// Closes the group of copies issued since the last call.
__device__ __forceinline__ void copy_commit() {
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}

// Waits until at most one group of copies (the latest) is still in flight.
__device__ __forceinline__ void copy_wait_all_but_one() {
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group 1;" ::: "memory");
#endif
}

// Global -> shared copies of one K step into one of the two stages. A: TILE_M x KT from the
// gathered rows (float4 when VEC_A: item idx is row idx / (KT / 4), columns
// (idx % (KT / 4)) * 4 .. + 4; scalar otherwise: row idx / KT, column idx % KT, so neighbouring
// threads read neighbouring floats). B: KT x TILE_N of the segment's slice, the same way.
// Out-of-range rows, k and columns are zero-filled, so padding contributes nothing.
template <class F, class E, unsigned KT>
struct Loader {
    static constexpr unsigned AV = F::VEC_A ? 4 : 1, BV = F::VEC_B ? 4 : 1;
    static constexpr unsigned A_ITEMS = TILE_M * KT / AV, B_ITEMS = KT * F::TILE_N / BV;
    static constexpr unsigned A_REGS = div_up(A_ITEMS, THREADS), B_REGS = div_up(B_ITEMS, THREADS);

    __device__ __forceinline__ static void issue(const unsigned* a_s, const float* A,
                                                 const float* B, float* As, float* Bs,
                                                 unsigned k0, unsigned n0) {
#pragma unroll
        for (unsigned s = 0; s < A_REGS; ++s) {
            const unsigned idx = threadIdx.x + s * THREADS;
            const unsigned r = idx / (KT / AV), c = (idx % (KT / AV)) * AV;
            if (A_ITEMS % THREADS == 0 || idx < A_ITEMS) {
                const unsigned ar = a_s[r];
                const bool ok = ar != INVALID && k0 + c < F::K;
                const float* p = ok ? A + (u64)ar * F::A_WIDTH + k0 + c : A;
                copy_async<4 * AV>(&As[r * E::AS_STRIDE + c], p, ok);
            }
        }
#pragma unroll
        for (unsigned s = 0; s < B_REGS; ++s) {
            const unsigned idx = threadIdx.x + s * THREADS;
            const unsigned r = idx / (F::TILE_N / BV), c = (idx % (F::TILE_N / BV)) * BV;
            if (B_ITEMS % THREADS == 0 || idx < B_ITEMS) {
                const bool ok = k0 + r < F::K && n0 + c < F::N;
                const float* p = ok ? B + (u64)(k0 + r) * F::N + n0 + c : B;
                copy_async<4 * BV>(&Bs[r * E::BS_STRIDE + c], p, ok);
            }
        }
    }
};

// Writes the staged tile: each thread takes float4 groups (VEC_C) or single columns, row-major
// over the tile, so a warp writes whole row segments.
template <class F>
__device__ __forceinline__ void write_tile(const F& f, const float* Cs, const unsigned* row_s,
                                           const unsigned* out_s, unsigned bi, unsigned n0) {
    constexpr unsigned CS_STRIDE = F::TILE_N + 4;
    constexpr unsigned V = F::VEC_C ? 4 : 1, PER_ROW = F::TILE_N / V;
    for (unsigned idx = threadIdx.x; idx < TILE_M * PER_ROW; idx += THREADS) {
        const unsigned r = idx / PER_ROW, c = (idx % PER_ROW) * V;
        const unsigned i = row_s[r], j = n0 + c;
        if (i == INVALID || j >= F::N) continue;
        const unsigned col = bi * F::N + j;
        float* p = f.c + (u64)out_s[r] * F::C_WIDTH + col;
        if constexpr (V == 4) {
            float4 v = *reinterpret_cast<const float4*>(&Cs[r * CS_STRIDE + c]);
            v.x = f.epilogue(i, col, v.x);
            v.y = f.epilogue(i, col + 1, v.y);
            v.z = f.epilogue(i, col + 2, v.z);
            v.w = f.epilogue(i, col + 3, v.w);
            *reinterpret_cast<float4*>(p) = v;
        } else {
            *p = f.epilogue(i, col, Cs[r * CS_STRIDE + c]);
        }
    }
}

// Adds the staged tile into node rows. Thread (column c = tid % TILE_N, chunk = tid / TILE_N)
// walks rows chunk * RPC .. + RPC in order, sums runs of equal destinations (rows of a relation
// are sorted by destination) and issues one atomic add per run; source rows (add_into_src) come
// in no particular order, mostly as runs of one: one atomic add each.
template <class F>
__device__ __forceinline__ void accumulate_tile(const F& f, const float* Cs, const unsigned* row_s,
                                                const unsigned* out_s, unsigned bi, unsigned n0) {
    constexpr unsigned CS_STRIDE = F::TILE_N + 4;
    constexpr unsigned CHUNKS = THREADS / F::TILE_N, RPC = TILE_M / CHUNKS;
    const unsigned c = threadIdx.x % F::TILE_N, chunk = threadIdx.x / F::TILE_N;
    const unsigned j = n0 + c;
    if (j >= F::N) return;
    const unsigned col = bi * F::N + j;
    unsigned d = INVALID;
    float sum = 0.0f;
#pragma unroll 4
    for (unsigned r = chunk * RPC; r < chunk * RPC + RPC; ++r) {
        const unsigned i = row_s[r];
        if (i == INVALID) break;  // padding rows only follow the tile's rows
        const float v = f.epilogue(i, col, Cs[r * CS_STRIDE + c]);
        const unsigned o = out_s[r];
        if (o != d) {
            if (d != INVALID) atomicAdd(f.c + (u64)d * F::C_WIDTH + col, sum);
            d = o;
            sum = v;
        } else {
            sum += v;
        }
    }
    if (d != INVALID) atomicAdd(f.c + (u64)d * F::C_WIDTH + col, sum);
}

// One block: tile blockIdx.x, batch and column tile blockIdx.y. `rows` is the number of
// iteration rows (a guard against a malformed order).
template <template <unsigned> class Engine, class F>
__device__ __forceinline__ void run(const F& f, const unsigned* __restrict__ tiles, unsigned rows) {
    typedef Engine<F::TILE_N> E;
    constexpr unsigned KT = min_u(MAX_KT, div_up(F::K, 16) * 16);
    constexpr unsigned N_TILES = div_up(F::N, F::TILE_N);
    constexpr unsigned CS_STRIDE = F::TILE_N + 4;
    constexpr unsigned K_STEPS = div_up(F::K, KT);
    constexpr unsigned STAGE_FLOATS = TILE_M * E::AS_STRIDE + MAX_KT * E::BS_STRIDE;
    constexpr unsigned AB_FLOATS = 2 * STAGE_FLOATS;
    constexpr unsigned C_FLOATS = TILE_M * CS_STRIDE;
    static_assert(F::TILE_N == 16 || F::TILE_N == 32 || F::TILE_N == 64, "TILE_N");
    static_assert(KT % E::K_STEP == 0, "K step");
    __shared__ __align__(16) float smem[AB_FLOATS > C_FLOATS ? AB_FLOATS : C_FLOATS];
    __shared__ unsigned row_s[TILE_M], a_s[TILE_M], out_s[TILE_M];

    const unsigned start = tiles[3 * blockIdx.x], end = tiles[3 * blockIdx.x + 1];
    const unsigned seg = tiles[3 * blockIdx.x + 2];
    const unsigned bi = blockIdx.y / N_TILES, n0 = (blockIdx.y % N_TILES) * F::TILE_N;
    if (threadIdx.x < TILE_M) {
        const unsigned p = start + threadIdx.x;
        unsigned i = p < end ? f.row(p) : INVALID;
        if (i >= rows) i = INVALID;
        row_s[threadIdx.x] = i;
        a_s[threadIdx.x] = i == INVALID ? INVALID : f.a_row(i);
        out_s[threadIdx.x] = i == INVALID ? INVALID : f.out_row(i);
    }
    __syncthreads();

    const float* A = f.a + (u64)bi * F::K;
    const float* B = f.b + (u64)seg * F::B_SLICE + (u64)bi * F::B_BATCH;
    typedef Loader<F, E, KT> L;
    E engine;
    engine.zero();
    // Two stages: the copies of step kt + 1 fly while step kt is multiplied.
    L::issue(a_s, A, B, smem, smem + TILE_M * E::AS_STRIDE, 0, n0);
    copy_commit();
    for (unsigned kt = 0; kt < K_STEPS; ++kt) {
        float* next = smem + ((kt + 1) & 1) * STAGE_FLOATS;
        if (kt + 1 < K_STEPS) L::issue(a_s, A, B, next, next + TILE_M * E::AS_STRIDE, (kt + 1) * KT, n0);
        copy_commit();  // possibly empty, so that "all but one" below means "step kt is here"
        copy_wait_all_but_one();
        __syncthreads();
        const float* cur = smem + (kt & 1) * STAGE_FLOATS;
        engine.template step<KT>(cur, cur + TILE_M * E::AS_STRIDE);
        __syncthreads();
    }
    engine.template stage<CS_STRIDE>(smem);
    __syncthreads();
    if constexpr (F::ACCUMULATE) {
        accumulate_tile(f, smem, row_s, out_s, bi, n0);
    } else {
        write_tile(f, smem, row_s, out_s, bi, n0);
    }
}

}  // namespace gemm
}  // namespace pg

#endif  // PIGEON_GEMM_CUH
