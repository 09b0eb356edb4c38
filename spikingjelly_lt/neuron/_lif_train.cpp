// Fused LIF forward and BPTT backward for training on the CPU (FastLIFNode's native path).
//
// One pass over memory per direction: each element's membrane stays in a register over
// all T steps, so the forward reads X once and writes S and -H once per step, and the
// backward reads -H and dL/dS once and writes dL/dX once per step (the torch path makes
// about ten full-size passes). Any dense layout works (NCHW or channels_last): every
// tensor of one call shares the per-step strides, so an element is a flat offset.
// Inputs may be float32 or bfloat16 (autocast); the membrane is always float32.
//
// Operation order is SpikingJelly's, and the build uses -ffp-contract=off (no FMA):
//   decay_input:  H = V + (X - (V - Vr)) / tau ;  else  H = (V - (V - Vr) / tau) + X
//   S = H >= Vth ;  hard reset V = S ? Vr : H ;  soft reset V = H - S * Vth.
// so spikes and membranes equal the torch path bit for bit.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cstdint>
#include <cstring>

namespace {

inline float load(const float* p, int64_t i) { return p[i]; }
inline float load(const uint16_t* p, int64_t i) {  // bfloat16 -> float32 is exact
  const uint32_t b = static_cast<uint32_t>(p[i]) << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
inline void store(float* p, int64_t i, float v) { p[i] = v; }
inline void store(uint16_t* p, int64_t i, float v) {  // float32 -> bfloat16, round to nearest even
  uint32_t b;
  std::memcpy(&b, &v, 4);
  if ((b & 0x7fffffffu) > 0x7f800000u) {  // NaN stays NaN
    p[i] = static_cast<uint16_t>((b >> 16) | 0x40u);
    return;
  }
  b += 0x7fffu + ((b >> 16) & 1u);
  p[i] = static_cast<uint16_t>(b >> 16);
}

constexpr int64_t kBlock = 1024;  // elements per task: a block's state stays in L1

// Each block loop is compiled for AVX-512, AVX2 and baseline x86-64 (target_clones, chosen
// at load time by the CPU): the build cache holds no -march=native code, yet the element
// loop runs 8/16 lanes wide where the CPU has them (baseline SSE2 alone made the deploy
// LIF 3.3x slower). IEEE add / sub / mul / div round the same at every width.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SJLT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SJLT_CLONES
#endif

// Within a block the time loop is outside and the element loop inside (contiguous, so it
// vectorizes); the block's membrane / gradient carry lives in a small stack buffer.

template <typename X, bool hard, bool decay_input, bool keep_h>
SJLT_CLONES void forward_block(const X* __restrict__ x, int64_t x_step, X* __restrict__ s, float* __restrict__ nh,
                               const float* __restrict__ v0, float* __restrict__ v_out, int64_t T, int64_t M,
                               float tau, float thr, float reset, int64_t a, int64_t n) {
  float v[kBlock];
  for (int64_t i = 0; i < n; ++i) v[i] = v0[a + i];
  for (int64_t t = 0; t < T; ++t) {
    const X* __restrict__ xt = x + t * x_step + a;
    X* __restrict__ st = s + t * M + a;
    float* __restrict__ ht = keep_h ? nh + t * M + a : nullptr;
    for (int64_t i = 0; i < n; ++i) {
      const float vi = v[i], d = vi - reset, xi = load(xt, i);
      const float h = decay_input ? vi + (xi - d) / tau : (vi - d / tau) + xi;
      const bool spike = h >= thr;
      store(st, i, spike ? 1.0f : 0.0f);
      if (keep_h) ht[i] = -h;
      v[i] = hard ? (spike ? reset : h) : h - (spike ? thr : 0.0f);
    }
  }
  for (int64_t i = 0; i < n; ++i) v_out[a + i] = v[i];
}

template <typename X, bool hard, bool decay_input, bool keep_h>
void forward_impl(const X* x, int64_t x_step, X* s, float* nh, const float* v0, float* v_out, int64_t T,
                  int64_t M, float tau, float thr, float reset) {
  at::parallel_for(0, (M + kBlock - 1) / kBlock, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t a = blk * kBlock;
      forward_block<X, hard, decay_input, keep_h>(x, x_step, s, nh, v0, v_out, T, M, tau, thr, reset, a,
                                                  std::min(kBlock, M - a));
    }
  });
}

// dL/dX for detach_reset=True with the ATan surrogate (the default neuron):
//   B[t] = g[t] / (a0 + a2 (thr - H[t])^2) + k * B[t+1] * R[t],
// R[t] = dV[t]/dH[t] = 1 - S[t] (hard reset) or 1 (soft reset); B = scale * dL/dH = dL/dX.
template <typename G, typename O, bool hard>
SJLT_CLONES void backward_block(const float* __restrict__ nh, const G* __restrict__ g, O* __restrict__ out,
                                int64_t T, int64_t M, float thr, float a0, float a2, float k, int64_t a,
                                int64_t n) {
  float next[kBlock];
  for (int64_t t = T - 1; t >= 0; --t) {
    const float* __restrict__ ht = nh + t * M + a;
    const G* __restrict__ gt = g + t * M + a;
    O* __restrict__ ot = out + t * M + a;
    const bool last = t == T - 1;
    for (int64_t i = 0; i < n; ++i) {
      const float w = ht[i] + thr;  // thr - H
      float b = load(gt, i) / (a0 + a2 * (w * w));
      if (!last) {
        const float r = (hard && !(w > 0.0f)) ? 0.0f : 1.0f;  // spiked (H >= thr): dV/dH = 0
        b = b + (k * next[i]) * r;
      }
      store(ot, i, b);
      next[i] = b;
    }
  }
}

template <typename G, typename O, bool hard>
void backward_impl(const float* nh, const G* g, O* out, int64_t T, int64_t M, float thr, float a0, float a2,
                   float k) {
  at::parallel_for(0, (M + kBlock - 1) / kBlock, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t a = blk * kBlock;
      backward_block<G, O, hard>(nh, g, out, T, M, thr, a0, a2, k, a, std::min(kBlock, M - a));
    }
  });
}

template <typename X>
void forward_dispatch(const X* x, int64_t x_step, X* s, float* nh, const float* v0, float* v_out, int64_t T,
                      int64_t M, float tau, float thr, float reset, bool hard, bool decay_input) {
#define SJLT_FWD(H, D, K) forward_impl<X, H, D, K>(x, x_step, s, nh, v0, v_out, T, M, tau, thr, reset)
  const bool keep = nh != nullptr;
  if (hard && decay_input) { if (keep) SJLT_FWD(true, true, true); else SJLT_FWD(true, true, false); }
  if (hard && !decay_input) { if (keep) SJLT_FWD(true, false, true); else SJLT_FWD(true, false, false); }
  if (!hard && decay_input) { if (keep) SJLT_FWD(false, true, true); else SJLT_FWD(false, true, false); }
  if (!hard && !decay_input) { if (keep) SJLT_FWD(false, false, true); else SJLT_FWD(false, false, false); }
#undef SJLT_FWD
}

template <typename G, typename O>
void backward_dispatch(const float* nh, const G* g, O* out, int64_t T, int64_t M, float thr, float a0, float a2,
                       float k, bool hard) {
  if (hard) backward_impl<G, O, true>(nh, g, out, T, M, thr, a0, a2, k);
  else backward_impl<G, O, false>(nh, g, out, T, M, thr, a0, a2, k);
}

}  // namespace

// x: [T, ...] (step stride 0 allowed: a repeated input), s: like x's dtype, nh: float32 [T, ...]
// (or empty: not kept, inference), v0 / v_out: float32 [...]; every per-step view shares one
// dense layout.
void lif_forward(torch::Tensor x, torch::Tensor s, torch::Tensor nh, torch::Tensor v0, torch::Tensor v_out,
                 double tau, double thr, double reset, bool hard, bool decay_input) {
  const int64_t T = s.size(0), M = v0.numel();
  TORCH_CHECK(nh.scalar_type() == torch::kFloat32 && v0.scalar_type() == torch::kFloat32 &&
              v_out.scalar_type() == torch::kFloat32 && s.scalar_type() == x.scalar_type());
  const bool keep_h = nh.numel() > 0;
  TORCH_CHECK(s.stride(0) == M && (!keep_h || nh.stride(0) == M) && (x.stride(0) == M || x.stride(0) == 0));
  const float* v0p = v0.data_ptr<float>();
  float* vo = v_out.data_ptr<float>();
  float* nhp = keep_h ? nh.data_ptr<float>() : nullptr;
  if (x.scalar_type() == torch::kFloat32) {
    forward_dispatch(x.data_ptr<float>(), x.stride(0), s.data_ptr<float>(), nhp, v0p, vo, T, M, (float)tau,
                 (float)thr, (float)reset, hard, decay_input);
  } else {
    TORCH_CHECK(x.scalar_type() == torch::kBFloat16, "x must be float32 or bfloat16");
    forward_dispatch(reinterpret_cast<const uint16_t*>(x.data_ptr()), x.stride(0),
                 reinterpret_cast<uint16_t*>(s.data_ptr()), nhp, v0p, vo, T, M, (float)tau, (float)thr,
                 (float)reset, hard, decay_input);
  }
}

void lif_backward(torch::Tensor nh, torch::Tensor g, torch::Tensor out, double thr, double a0, double a2,
                  double k, bool hard) {
  const int64_t T = nh.size(0), M = nh.numel() / T;
  TORCH_CHECK(nh.scalar_type() == torch::kFloat32 && nh.stride(0) == M && g.stride(0) == M &&
              out.stride(0) == M);
  const float* nhp = nh.data_ptr<float>();
  const bool gb = g.scalar_type() == torch::kBFloat16, ob = out.scalar_type() == torch::kBFloat16;
  TORCH_CHECK((gb || g.scalar_type() == torch::kFloat32) && (ob || out.scalar_type() == torch::kFloat32));
  const float t_ = (float)thr, a0_ = (float)a0, a2_ = (float)a2, k_ = (float)k;
  auto* g16 = reinterpret_cast<const uint16_t*>(g.data_ptr());
  auto* o16 = reinterpret_cast<uint16_t*>(out.data_ptr());
  if (!gb && !ob) backward_dispatch(nhp, g.data_ptr<float>(), out.data_ptr<float>(), T, M, t_, a0_, a2_, k_, hard);
  if (!gb && ob) backward_dispatch(nhp, g.data_ptr<float>(), o16, T, M, t_, a0_, a2_, k_, hard);
  if (gb && !ob) backward_dispatch(nhp, g16, out.data_ptr<float>(), T, M, t_, a0_, a2_, k_, hard);
  if (gb && ob) backward_dispatch(nhp, g16, o16, T, M, t_, a0_, a2_, k_, hard);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("lif_forward", &lif_forward, "fused LIF forward over T steps (training)");
  m.def("lif_backward", &lif_backward, "fused LIF BPTT backward, ATan surrogate, detach_reset");
}
