// pigeon backward helpers: derivatives of the element-wise functions (as the CPU back end's
// `unary_grad`), group reductions on unsigned values, and the bounds of a relation's run among a
// destination's incoming edges. Fixed text included after common.cuh into translation units
// whose plan has backward statements (codegen/cuda/grad.cuh).
#ifndef PIGEON_GRAD_CUH
#define PIGEON_GRAD_CUH

namespace pg {

// dy * f'(x), with f'(0) taken from the left where f has a kink (relu'(0) = 0).
__device__ __forceinline__ float relu_grad(float x, float dy) { return x > 0.0f ? dy : 0.0f; }
__device__ __forceinline__ float leaky_relu_grad(float x, float dy, float slope) {
    return x > 0.0f ? dy : slope * dy;
}
__device__ __forceinline__ float elu_grad(float x, float dy, float alpha) {
    return x > 0.0f ? dy : alpha * expf(x) * dy;
}
__device__ __forceinline__ float gelu_grad(float x, float dy) {
    const float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    const float density = expf(-0.5f * x * x) * 0.39894228040143268f;
    return (cdf + x * density) * dy;
}
__device__ __forceinline__ float tanh_grad(float x, float dy) {
    const float t = tanhf(x);
    return (1.0f - t * t) * dy;
}
__device__ __forceinline__ float sigmoid_grad(float x, float dy) {
    const float s = sigmoid(x);
    return s * (1.0f - s) * dy;
}
__device__ __forceinline__ float exp_grad(float x, float dy) { return expf(x) * dy; }
__device__ __forceinline__ float log_grad(float x, float dy) { return (1.0f / x) * dy; }
__device__ __forceinline__ float sqrt_grad(float x, float dy) { return (0.5f / sqrtf(x)) * dy; }

// Minimum of v over the G lanes of a group; every lane gets the result.
template <int G>
__device__ __forceinline__ unsigned group_min_u(unsigned v, unsigned mask) {
#pragma unroll
    for (int o = G / 2; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(mask, v, o, G));
    return v;
}

// The number of positions p in [begin, end) with rel[edges[p]] == r, where the positions are
// sorted by relation (the GPU in-CSR of one destination): two binary searches.
__device__ __forceinline__ unsigned rel_run_size(const unsigned* __restrict__ edges,
                                                 const unsigned* __restrict__ rel, unsigned begin,
                                                 unsigned end, unsigned r) {
    unsigned lo = begin, hi = end;
    while (lo < hi) {  // first position with relation >= r
        const unsigned mid = lo + (hi - lo) / 2;
        if (rel[edges[mid]] < r) lo = mid + 1; else hi = mid;
    }
    unsigned lo2 = lo, hi2 = end;
    while (lo2 < hi2) {  // first position with relation > r
        const unsigned mid = lo2 + (hi2 - lo2) / 2;
        if (rel[edges[mid]] <= r) lo2 = mid + 1; else hi2 = mid;
    }
    return lo2 - lo;
}

}  // namespace pg

#endif  // PIGEON_GRAD_CUH
