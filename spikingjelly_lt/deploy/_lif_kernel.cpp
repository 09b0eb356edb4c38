// Fused LIF / IF over T steps for the deploy engine: one read of the input and one write
// of the spikes per step. Same operation order as SpikingJelly (and engine._lif_block):
// decay_input:  H = V + (X - (V - Vr)) / tau ;  else H = (V - (V - Vr) / tau) + X ;  IF: H = V + X
// S = H >= Vth ; hard reset V = S ? Vr : H ; soft reset V = H - S * Vth.
// Built with -ffp-contract=off: no FMA contraction, every operation rounds like torch's.
// The block loop is compiled for AVX-512, AVX2 and baseline x86-64 (target_clones, chosen
// at load time by the CPU): the build cache holds no -march=native code, yet the loop runs
// 8/16 lanes wide where the CPU has them (baseline SSE2 alone made it compute-bound).
// IEEE add / sub / div round the same at every vector width, so all clones agree bit for bit.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cstdint>
#include <vector>

namespace {

enum Mode { DECAY_INPUT = 0, NO_DECAY_INPUT = 1, IF_NODE = 2 };

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SJLT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SJLT_CLONES
#endif

template <int MODE, bool SOFT>
SJLT_CLONES void lif_block(const float* __restrict__ x, uint8_t* __restrict__ o, float* __restrict__ v,
                           int64_t n, int64_t T, int64_t M, bool cnst, float tau, float th, float rs) {
  for (int64_t i = 0; i < n; ++i) v[i] = rs;
  for (int64_t t = 0; t < T; ++t) {
    const float* __restrict__ xt = x + (cnst ? 0 : t) * M;
    uint8_t* __restrict__ st = o + t * M;
    for (int64_t i = 0; i < n; ++i) {
      const float vi = v[i];
      float h;
      if constexpr (MODE == IF_NODE) {
        h = vi + xt[i];
      } else if constexpr (MODE == DECAY_INPUT) {
        h = vi + (xt[i] - (vi - rs)) / tau;
      } else {
        h = (vi - (vi - rs) / tau) + xt[i];
      }
      const bool s = h >= th;
      st[i] = s;
      v[i] = SOFT ? (s ? h - th : h) : (s ? rs : h);
    }
  }
}

using BlockFn = void (*)(const float*, uint8_t*, float*, int64_t, int64_t, int64_t, bool, float, float, float);

template <int MODE>
BlockFn pick(bool soft) { return soft ? &lif_block<MODE, true> : &lif_block<MODE, false>; }

}  // namespace

void lif_forward(torch::Tensor xs, torch::Tensor out, double tau, double thr, double reset,
                 bool decay_input, bool is_if, bool soft) {
  TORCH_CHECK(xs.scalar_type() == torch::kFloat32 && xs.is_contiguous() && xs.dim() == 2);
  TORCH_CHECK(out.scalar_type() == torch::kBool && out.is_contiguous() && out.dim() == 2);
  const int64_t T = out.size(0), M = out.size(1);
  TORCH_CHECK(xs.size(1) == M && (xs.size(0) == 1 || xs.size(0) == T));
  const bool cnst = xs.size(0) == 1;
  const float* x = xs.data_ptr<float>();
  uint8_t* o = reinterpret_cast<uint8_t*>(out.data_ptr<bool>());
  const float taut = (float)tau, th = (float)thr, rs = (float)reset;
  const BlockFn fn = is_if ? pick<IF_NODE>(soft) : decay_input ? pick<DECAY_INPUT>(soft) : pick<NO_DECAY_INPUT>(soft);
  constexpr int64_t B = 4096;  // one block's membrane (16 KB) stays in L1 over the T steps
  constexpr int64_t GRAIN = 8;  // blocks per thread at least: a small layer runs inline
  at::parallel_for(0, (M + B - 1) / B, GRAIN, [&](int64_t b0, int64_t b1) {
    std::vector<float> vbuf(B);
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t a = blk * B;
      fn(x + a, o + a, vbuf.data(), std::min(B, M - a), T, M, cnst, taut, th, rs);
    }
  });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("lif_forward", &lif_forward, "fused LIF over T steps"); }
