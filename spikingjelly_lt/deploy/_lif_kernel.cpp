// Fused LIF / IF over T steps for the deploy engine: one read of the input and one write
// of the spikes per step. Same operation order as SpikingJelly (and engine._lif_block):
// decay_input:  H = V + (X - (V - Vr)) / tau ;  else H = (V - (V - Vr) / tau) + X ;  IF: H = V + X
// S = H >= Vth ; hard reset V = S ? Vr : H ; soft reset V = H - S * Vth.
// Built with -ffp-contract=off: no FMA contraction, every operation rounds like torch's.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <vector>

void lif_forward(torch::Tensor xs, torch::Tensor out, double tau, double thr, double reset,
                 bool decay_input, bool is_if, bool soft) {
  TORCH_CHECK(xs.scalar_type() == torch::kFloat32 && xs.is_contiguous() && xs.dim() == 2);
  TORCH_CHECK(out.scalar_type() == torch::kBool && out.is_contiguous() && out.dim() == 2);
  const int64_t T = out.size(0), M = out.size(1);
  TORCH_CHECK(xs.size(1) == M && (xs.size(0) == 1 || xs.size(0) == T));
  const bool cnst = xs.size(0) == 1;
  const float* x = xs.data_ptr<float>();
  bool* o = out.data_ptr<bool>();
  const float taut = (float)tau, th = (float)thr, rs = (float)reset;
  constexpr int64_t B = 4096;
  at::parallel_for(0, (M + B - 1) / B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> vbuf(B);
    float* v = vbuf.data();
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t a = blk * B, n = std::min(B, M - a);
      for (int64_t i = 0; i < n; ++i) v[i] = rs;
      for (int64_t t = 0; t < T; ++t) {
        const float* xt = x + (cnst ? 0 : t) * M + a;
        bool* st = o + t * M + a;
        for (int64_t i = 0; i < n; ++i) {
          const float vi = v[i];
          float h;
          if (is_if) {
            h = vi + xt[i];
          } else if (decay_input) {
            const float d = vi - rs;
            h = vi + (xt[i] - d) / taut;
          } else {
            const float d = vi - rs;
            h = (vi - d / taut) + xt[i];
          }
          const bool s = h >= th;
          st[i] = s;
          v[i] = soft ? (s ? h - th : h) : (s ? rs : h);
        }
      }
    }
  });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("lif_forward", &lif_forward, "fused LIF over T steps"); }
