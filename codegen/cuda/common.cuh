// pigeon device helpers: element-wise functions, group reductions. Fixed text included into
// every generated translation unit (codegen/cuda/common.cuh).
#ifndef PIGEON_COMMON_CUH
#define PIGEON_COMMON_CUH

namespace pg {

__device__ __forceinline__ float neg(float x) { return -x; }
__device__ __forceinline__ float relu(float x) { return fmaxf(x, 0.0f); }
__device__ __forceinline__ float leaky_relu(float x, float slope) { return x > 0.0f ? x : slope * x; }
__device__ __forceinline__ float elu(float x, float alpha) { return x > 0.0f ? x : alpha * expm1f(x); }
__device__ __forceinline__ float gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// Lanes of the current warp that form this thread's group of G consecutive lanes (G a power of
// two, at most 32).
template <int G>
__device__ __forceinline__ unsigned group_mask() {
    if constexpr (G >= 32) {
        return 0xffffffffu;
    } else {
        unsigned lane = threadIdx.x & 31u;
        return ((1u << G) - 1u) << (lane & ~(unsigned)(G - 1));
    }
}

// Sum of v over the G lanes of a group; every lane gets the result.
template <int G>
__device__ __forceinline__ float group_sum(float v, unsigned mask) {
#pragma unroll
    for (int o = G / 2; o > 0; o >>= 1) v += __shfl_xor_sync(mask, v, o, G);
    return v;
}

// Maximum of v over the G lanes of a group; every lane gets the result.
template <int G>
__device__ __forceinline__ float group_max(float v, unsigned mask) {
#pragma unroll
    for (int o = G / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(mask, v, o, G));
    return v;
}

}  // namespace pg

#endif
