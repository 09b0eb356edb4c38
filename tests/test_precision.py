"""Precision option (fp32 / bf16), memory format through the spiking path, the fused LIF
kernel against the torch path, and the supermask's eval-mode weight cache."""

import pytest
import torch

from conftest import run_cli
from spikingjelly_lt.cell import Cell
from spikingjelly_lt.errors import UsageError
from spikingjelly_lt.hardware import bf16_supported
from spikingjelly_lt.methods import resolve
from spikingjelly_lt.neuron.fast_lif import FastLIFNode, _native_kernel, fast_lif_multi_step
from spikingjelly_lt.training import precision as precision_mod
from spikingjelly_lt.training.precision import precision_for

CL = torch.channels_last
needs_bf16 = pytest.mark.skipif(not bf16_supported("cpu"), reason="CPU without avx512_bf16 / amx_bf16")


def _cl5(x: torch.Tensor) -> torch.Tensor:
    """[T, N, C, H, W] whose every step is channels_last."""
    return x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)


# --- the option ---------------------------------------------------------------------------

def test_precision_and_memory_format_are_in_the_hash():
    base = Cell(method="snn")
    hashes = {resolve(base).hash, resolve(base.replace(precision="bf16")).hash,
              resolve(base.replace(memory_format="contiguous")).hash}
    assert len(hashes) == 3
    assert base.recipe.precision == "fp32" and base.recipe.memory_format == "auto"  # measured per machine
    # a description stored before the field existed ran NCHW
    old = base.to_dict()
    del old["recipe"]["memory_format"]
    assert Cell.from_dict(old).recipe.memory_format == "contiguous"


def test_bad_precision_is_one_line_exit_2(capsys, monkeypatch):
    code, out, err = run_cli(["train", "--method", "snn", "--set", "recipe.precision=fp16x"], capsys, monkeypatch)
    assert code == 2 and "recipe.precision='fp16x'" in err and "fp32, bf16" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bf16_without_cpu_support_is_refused(capsys, monkeypatch):
    monkeypatch.setattr(precision_mod, "bf16_supported", lambda device="cpu": False)
    with pytest.raises(UsageError, match="avx512_bf16 or amx_bf16"):
        precision_for("bf16", "cpu")
    assert precision_for("fp32", "cpu").dtype is None  # fp32 needs nothing
    code, out, err = run_cli(["train", "--method", "snn", "--set", "recipe.precision=bf16"], capsys, monkeypatch)
    assert code == 2 and "precision bf16 needs a CPU with avx512_bf16 or amx_bf16" in err
    assert "Traceback" not in err and out == ""


@needs_bf16
def test_bf16_cell_trains_deterministically_with_fp32_membranes(tmp_path):
    from spikingjelly_lt.training.trainer import run_cell

    cell = Cell(method="binw-slt").with_values({
        "recipe.precision": "bf16", "recipe.epochs": 2, "model.timesteps": 2, "model.v_threshold": 0.5,
        "data.limit_train": 1000, "data.limit_test": 200, "recipe.val_fraction": 0.0})
    a, b = run_cell(cell), run_cell(cell)
    for k in ("top1", "mean_firing_rate", "energy_pj", "mask_digest"):
        assert a[k] == b[k], k
    assert a["top1"] > 0.2  # it learned (chance is 0.1)

    # inside: bf16 spikes (exact {0,1}), fp32 membrane
    node = FastLIFNode(v_threshold=0.5, step_mode="m", detach_reset=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x = torch.nn.functional.conv2d(torch.randn(8, 3, 4, 4), torch.randn(4, 3, 1, 1)).view(2, 4, 4, 4, 4)
        s = node(x)
    assert x.dtype == s.dtype == torch.bfloat16 and node.v.dtype == torch.float32
    assert set(s.unique().tolist()) <= {0.0, 1.0}


# --- memory format through one spiking block ----------------------------------------------

@pytest.mark.parametrize("autocast", [False, pytest.param(True, marks=needs_bf16)])
def test_channels_last_survives_a_spiking_block(autocast):
    from spikingjelly_lt._sj import set_step_mode
    from spikingjelly_lt.models.resnet19 import BasicBlock
    from spikingjelly_lt.neuron.neurons import lif

    block = BasicBlock(4, 8, 2, lambda: lif(v_threshold=0.3)).to(memory_format=CL)  # 1x1 shortcut too
    set_step_mode(block, "m")
    seen = []
    for name, m in block.named_modules():
        if not list(m.children()):
            m.register_forward_hook(lambda m, i, o, name=name: seen.append((name, i[0], o)))
    x = _cl5(torch.randn(3, 2, 4, 8, 8)).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = block(x)
    out.float().sum().backward()
    for name, i, o in seen + [("block", x, out)]:
        for t in (i, o):
            assert t[0].is_contiguous(memory_format=CL) and not t[0].is_contiguous(), name
    assert x.grad[0].is_contiguous(memory_format=CL)
    if autocast:
        assert out.dtype == torch.bfloat16


# --- the fused LIF kernel against the torch path ------------------------------------------

needs_kernel = pytest.mark.skipif(_native_kernel() is None, reason="no C++ toolchain for the fused LIF kernel")


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", ["nchw", "channels_last", "repeated"])
@pytest.mark.parametrize("v_reset,decay_input", [(0.0, True), (None, True), (0.25, False)])
def test_native_lif_equals_the_torch_path(dtype, layout, v_reset, decay_input):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 5, 6, 7, generator=gen) * 0.9
    if layout == "channels_last":
        x = _cl5(x)
    if layout == "repeated":  # direct encoding: one step expanded T times (stride 0)
        x = x[:1].expand(4, *x.shape[1:])
    x = x.to(dtype)
    g = torch.randn(4, 3, 5, 6, 7, generator=gen).to(dtype)
    res = {}
    for native in (False, True):
        xi = x.detach().clone() if layout != "repeated" else x.detach()
        xi.requires_grad_(True)
        s, v, _ = fast_lif_multi_step(xi, torch.zeros(3, 5, 6, 7), 2.0, decay_input, 0.5, v_reset, None, True,
                                      native=native)
        s.backward(g)
        res[native] = (s, v, xi.grad)
    (s0, v0, g0), (s1, v1, g1) = res[False], res[True]
    assert s1.dtype == dtype and v1.dtype == torch.float32
    assert torch.equal(s0, s1) and torch.equal(v0, v1)  # bit for bit
    assert 0 < s1.float().mean() < 1
    tol = 1e-6 if dtype == torch.float32 else 1e-2
    assert torch.allclose(g0.float(), g1.float(), rtol=tol, atol=tol)


# --- eval weight cache --------------------------------------------------------------------

def _counting(monkeypatch, cls):
    calls = []
    real = cls._effective

    def effective(self, weight):
        calls.append(self)
        return real(self, weight)

    monkeypatch.setattr(cls, "_effective", effective)
    return calls


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_supermask_eval_weight_is_reused_until_the_scores_change(scope, monkeypatch):
    from spikingjelly_lt.build import build_model
    from torch.nn.utils import parametrize

    from spikingjelly_lt.nn.supermask import Supermask

    model = build_model(arch="resnet19", method="binw-slt", width=0.125, input_size=8, timesteps=2,
                        num_classes=10, scope=scope)
    layers = [m for m in model.modules() if isinstance(m, Supermask)]
    owners = [m for m in model.modules() if parametrize.is_parametrized(m, "weight")]
    calls = _counting(monkeypatch, Supermask)
    x = torch.randn(4, 3, 8, 8)
    model.eval()
    with torch.no_grad():
        a = model(x)
        first = len(calls)
        from spikingjelly_lt._sj import reset_net

        reset_net(model)
        b = model(x)
        w_a = [m.weight for m in owners]
        assert all(w is m.weight for w, m in zip(w_a, owners))  # the same tensor, not a recomputation
    assert first == len(layers) and len(calls) == first  # computed once, reused by the second forward
    assert torch.equal(a, b)

    # an optimizer step changes the scores: the next eval forward recomputes and differs
    model.train()
    opt = torch.optim.SGD([m.scores for m in layers], lr=10.0)
    model(x).sum().backward()
    opt.step()
    reset_net(model)
    model.eval()
    calls.clear()
    with torch.no_grad():
        model(x)
        w_c = [m.weight for m in owners]
    assert len(calls) == len(layers) and not all(torch.equal(p, q) for p, q in zip(w_a, w_c))

    # a change to one member's scores refreshes every layer that depends on it
    calls.clear()
    with torch.no_grad():
        layers[0].scores.mul_(-3.0).add_(1.0)
        reset_net(model)
        model(x)
    assert len(calls) == (len(layers) if scope == "global" else 1)

    # training never keeps a weight
    model.train()
    calls.clear()
    model(x)
    reset_net(model)
    model(x)
    assert len(calls) == 2 * len(layers) and all(m._kept is None for m in layers)


def test_every_result_names_the_cpu_model_and_its_fast_path_flags(monkeypatch):
    from spikingjelly_lt import hardware
    from spikingjelly_lt.training.metrics import environment

    monkeypatch.setattr(hardware, "_proc_cpuinfo", lambda: ("AMD EPYC 9R14", frozenset({"avx512f", "avx512_bf16", "sse2"})))
    env = environment(torch.device("cpu"))
    assert env["cpu"] == "AMD EPYC 9R14"  # not platform.processor()'s bare "x86_64"
    assert env["cpu_flags"] == ["avx512f", "avx512_bf16"]  # only the flags that pick a path
