// pigeon weight-gradient template: for each slice s of the weight-like C,
// C[s] = sum over the iteration rows i of segment s of A[a_row(i)]^T B[b_row(i)], contracted as
// the forward product's form (codegen/cuda/wgrad.cuh). Fixed text included once per translation
// unit after common.cuh; each generated kernel defines a functor F (codegen/src/wgrad.rs) and
// calls pg::wgrad::run(f, tiles, rows).
//
// F provides, all compile-time:
//   K, N, BATCH          contraction extent (A columns), output columns, batches (heads)
//   PER_BATCH            batched form: C holds BATCH matrices K x N; else the batches are summed
//   HAS_A                false: A is a column of ones (K = 1), a segmented row sum
//   A_WIDTH, B_WIDTH     floats per A row (BATCH * K) and per B row (BATCH * N)
//   C_WIDTH              floats per C slice
//   TK, TN               the C tile of one block: TK x TN elements, TK * TN <= 1024
// and at run time pointers a, b, c and
//   row(p)      iteration row at position p (order[p], or p)
//   a_row(i)    A row of iteration row i
//   b_row(i)    B row of iteration row i
//
// Scheme (split-K over rows): the runtime cuts each segment into tiles of at most TILE_M
// positions (tiles[3t..]: start, end, segment) and zeroes C before the launch. Block
// (blockIdx.x, blockIdx.y) takes tile blockIdx.x and C tile blockIdx.y = (batch, k tile, n
// tile); it walks the tile's rows CHUNK at a time, staging the A and B columns of its C tile in
// shared memory, each thread accumulating its PER outputs in registers, and adds its partial
// tile into C with one atomicAdd per element. Slices without rows stay 0.
#ifndef PIGEON_WGRAD_CUH
#define PIGEON_WGRAD_CUH

namespace pg {
namespace wgrad {

constexpr unsigned TILE_M = 256;
constexpr unsigned THREADS = 256;
constexpr unsigned CHUNK = 32;
constexpr unsigned INVALID = 0xffffffffu;
typedef unsigned long long u64;

static_assert(TILE_M % CHUNK == 0, "tiles are whole chunks");

__host__ __device__ constexpr unsigned div_up(unsigned a, unsigned b) { return (a + b - 1) / b; }

template <class F>
__device__ __forceinline__ void run(const F& f, const unsigned* __restrict__ tiles, unsigned rows) {
    constexpr unsigned K_TILES = div_up(F::K, F::TK), N_TILES = div_up(F::N, F::TN);
    constexpr unsigned OUT = F::TK * F::TN;
    constexpr unsigned PER = div_up(OUT, THREADS);
    constexpr unsigned SUMMED = F::PER_BATCH ? 1 : F::BATCH;
    static_assert(OUT <= 4 * THREADS, "C tile");
    __shared__ float as[CHUNK][F::TK];
    __shared__ float bs[CHUNK][F::TN];
    __shared__ unsigned a_s[CHUNK], b_s[CHUNK];

    const unsigned start = tiles[3 * blockIdx.x], end = tiles[3 * blockIdx.x + 1];
    const unsigned seg = tiles[3 * blockIdx.x + 2];
    const unsigned nt = blockIdx.y % N_TILES, kt = (blockIdx.y / N_TILES) % K_TILES;
    const unsigned cb = blockIdx.y / (N_TILES * K_TILES);  // the batch of a batched form
    const unsigned k0 = kt * F::TK, n0 = nt * F::TN;
    float acc[PER];
#pragma unroll
    for (unsigned q = 0; q < PER; ++q) acc[q] = 0.0f;

    for (unsigned sb = 0; sb < SUMMED; ++sb) {
        const unsigned bi = F::PER_BATCH ? cb : sb;
        for (unsigned p0 = start; p0 < end; p0 += CHUNK) {
            __syncthreads();  // the previous chunk is consumed
            if (threadIdx.x < CHUNK) {
                const unsigned p = p0 + threadIdx.x;
                unsigned i = p < end ? f.row(p) : INVALID;
                if (i >= rows) i = INVALID;
                b_s[threadIdx.x] = i == INVALID ? INVALID : f.b_row(i);
                a_s[threadIdx.x] = (i == INVALID || !F::HAS_A) ? INVALID : f.a_row(i);
            }
            __syncthreads();
            for (unsigned x = threadIdx.x; x < CHUNK * F::TK; x += THREADS) {
                const unsigned r = x / F::TK, c = x % F::TK, kk = k0 + c;
                float v = 0.0f;
                if (b_s[r] != INVALID && kk < F::K) {
                    if constexpr (F::HAS_A) {
                        v = f.a[(u64)a_s[r] * F::A_WIDTH + bi * F::K + kk];
                    } else {
                        v = 1.0f;
                    }
                }
                as[r][c] = v;
            }
            for (unsigned x = threadIdx.x; x < CHUNK * F::TN; x += THREADS) {
                const unsigned r = x / F::TN, c = x % F::TN, j = n0 + c;
                float v = 0.0f;
                if (b_s[r] != INVALID && j < F::N) v = f.b[(u64)b_s[r] * F::B_WIDTH + bi * F::N + j];
                bs[r][c] = v;
            }
            __syncthreads();
#pragma unroll
            for (unsigned q = 0; q < PER; ++q) {
                const unsigned o = threadIdx.x + q * THREADS;
                if (o < OUT) {
                    const unsigned c = o / F::TN, j = o % F::TN;
                    float s = acc[q];
#pragma unroll 8
                    for (unsigned r = 0; r < CHUNK; ++r) s = fmaf(as[r][c], bs[r][j], s);
                    acc[q] = s;
                }
            }
        }
    }
    float* C = f.c + (u64)seg * F::C_WIDTH + (F::PER_BATCH ? (u64)cb * F::K * F::N : 0ull);
#pragma unroll
    for (unsigned q = 0; q < PER; ++q) {
        const unsigned o = threadIdx.x + q * THREADS;
        const unsigned kk = k0 + o / F::TN, j = n0 + o % F::TN;
        if (o < OUT && kk < F::K && j < F::N) atomicAdd(C + (u64)kk * F::N + j, acc[q]);
    }
}

}  // namespace wgrad
}  // namespace pg

#endif  // PIGEON_WGRAD_CUH
