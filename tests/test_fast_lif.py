"""FastLIFNode must match SpikingJelly's LIFNode: identical spikes, same v, same gradients."""

from __future__ import annotations

import itertools

import pytest
import torch

from spikingjelly_lt._sj import functional, neuron, surrogate
from spikingjelly_lt.neuron.fast_lif import FastLIFNode, fast_lif_multi_step

SHAPES = [(8, 3, 5), (2, 4, 6, 6), (16,)]


def _pair(step_mode: str = "m", surrogate_cls=surrogate.ATan, **kw):
    """(SpikingJelly LIFNode, FastLIFNode) built with the same arguments."""
    kw = {"tau": 2.0, "detach_reset": True, **kw}
    ref = neuron.LIFNode(surrogate_function=surrogate_cls(), step_mode=step_mode, **kw)
    new = FastLIFNode(surrogate_function=surrogate_cls(), step_mode=step_mode, **kw)
    return ref, new


def _inputs(T: int, shape: tuple[int, ...], seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((T, *shape), generator=gen) * 1.5 + 0.7  # ~30% spikes
    g = torch.randn((T, *shape), generator=gen)
    gv = torch.randn(shape, generator=gen)
    return x, g, gv


def _run(m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    if m.step_mode == "m":
        return m(x)
    return torch.stack([m(xt) for xt in x])


def _fwd_bwd(
    m: torch.nn.Module, x: torch.Tensor, g: torch.Tensor, gv: torch.Tensor, calls: int = 1
):
    """``calls`` consecutive runs without reset; loss uses every spike output and the final v."""
    xx = x.clone().requires_grad_()
    spikes = [_run(m, xx * (1.0 - 0.1 * i)) for i in range(calls)]
    loss = sum((s * g).sum() for s in spikes) + (m.v * gv).sum()
    loss.backward()
    return [s.detach() for s in spikes], m.v.detach(), xx.grad


def _assert_same(ref_out, new_out) -> None:
    (s_ref, v_ref, g_ref), (s_new, v_new, g_new) = ref_out, new_out
    assert s_ref[0].sum() > 0, "test input produced no spikes"
    for a, b in zip(s_ref, s_new, strict=True):
        assert torch.equal(a, b)
    torch.testing.assert_close(v_new, v_ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(g_new, g_ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "step_mode,T,shape,detach_reset,tau",
    list(itertools.product(["m", "s"], [1, 4], SHAPES, [True, False], [2.0, 4.0 / 3.0])),
)
def test_matches_spikingjelly(step_mode, T, shape, detach_reset, tau):
    x, g, gv = _inputs(T, shape, seed=T + len(shape))
    ref, new = _pair(step_mode, tau=tau, detach_reset=detach_reset)
    _assert_same(_fwd_bwd(ref, x, g, gv), _fwd_bwd(new, x, g, gv))


@pytest.mark.parametrize(
    "v_reset,decay_input,surrogate_cls",
    list(itertools.product([0.0, None, -0.25], [True, False], [surrogate.ATan, surrogate.Sigmoid])),
)
@pytest.mark.parametrize("detach_reset", [True, False])
def test_other_configs(v_reset, decay_input, surrogate_cls, detach_reset):
    """Soft reset, non-zero reset, decay_input=False and the Sigmoid surrogate."""
    x, g, gv = _inputs(4, (6, 5), seed=3)
    kw = dict(v_reset=v_reset, decay_input=decay_input, detach_reset=detach_reset, tau=4.0 / 3.0)
    ref, new = _pair("m", surrogate_cls, **kw)
    _assert_same(_fwd_bwd(ref, x, g, gv), _fwd_bwd(new, x, g, gv))


@pytest.mark.parametrize("step_mode", ["m", "s"])
def test_state_chains_across_calls_and_reset(step_mode):
    """v persists across calls (gradients flow through it) and reset_net restores it."""
    x, g, gv = _inputs(4, (8, 3, 5), seed=7)
    ref, new = _pair(step_mode)
    _assert_same(_fwd_bwd(ref, x, g, gv, calls=2), _fwd_bwd(new, x, g, gv, calls=2))
    functional.reset_net(new)
    assert new.v == 0.0  # back to the scalar sentinel, like LIFNode
    fresh = FastLIFNode(tau=2.0, surrogate_function=surrogate.ATan(), detach_reset=True)
    fresh.step_mode = step_mode
    with torch.no_grad():
        assert torch.equal(_run(new, x), _run(fresh, x))
        assert torch.equal(new.v, fresh.v)


def test_single_and_multi_step_chain():
    """One single-step call then a multi-step call equals one multi-step call over T+1 steps."""
    x, _, _ = _inputs(5, (4, 7), seed=11)
    chained = FastLIFNode(surrogate_function=surrogate.ATan(), detach_reset=True, step_mode="s")
    ref = neuron.LIFNode(
        tau=2.0, surrogate_function=surrogate.ATan(), detach_reset=True, step_mode="m"
    )
    s0 = chained(x[0])
    chained.step_mode = "m"
    s_rest = chained(x[1:])
    s_ref = ref(x)
    assert torch.equal(torch.cat([s0[None], s_rest]), s_ref)
    assert torch.equal(chained.v, ref.v)


def test_threshold_edge_is_bit_exact():
    """H exactly at V_th fires (>=); the forward keeps SpikingJelly's rounding bit for bit."""
    x = torch.full((3, 4), 2.0)  # tau 2, v 0: H = 1.0 exactly at t=0
    x[1] = torch.tensor([2.0, 1.0, 0.5, 1e-7])
    x[2] = torch.nextafter(torch.full((4,), 2.0), torch.tensor(0.0))
    ref, new = _pair("m")
    s_ref, s_new = ref(x), new(x)
    assert s_ref[0].all()
    assert torch.equal(s_ref, s_new) and torch.equal(ref.v, new.v)


@pytest.mark.parametrize("v_reset", [0.0, None])
def test_store_v_seq(v_reset):
    x, g, _ = _inputs(4, (5, 3), seed=5)
    gs = torch.randn_like(x)
    outs = []
    for m in _pair("m", v_reset=v_reset, store_v_seq=True):
        xx = x.clone().requires_grad_()
        s = m(xx)
        ((s * g).sum() + (m.v_seq * gs).sum()).backward()
        outs.append((s.detach(), m.v_seq.detach(), xx.grad))
    (s_ref, vs_ref, g_ref), (s_new, vs_new, g_new) = outs
    assert torch.equal(s_ref, s_new)
    torch.testing.assert_close(vs_new, vs_ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(g_new, g_ref, rtol=0, atol=1e-5)


def test_functional_grad_to_initial_v_and_no_grad_path():
    x, g, gv = _inputs(4, (6, 4), seed=9)
    v0 = torch.rand(6, 4)
    res = []
    for fn in (functional.lif_multi_step, fast_lif_multi_step):
        xx, vv = x.clone().requires_grad_(), v0.clone().requires_grad_()
        s, v, _ = fn(xx, vv, 2.0, True, 1.0, 0.0, surrogate.ATan(), True)
        ((s * g).sum() + (v * gv).sum()).backward()
        res.append((s.detach(), v.detach(), xx.grad, vv.grad))
    for a, b in zip(*res, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)
    with torch.no_grad():
        s, v, _ = fast_lif_multi_step(x, v0, surrogate_function=surrogate.ATan(), detach_reset=True)
    assert torch.equal(s, res[0][0]) and torch.equal(v, res[0][1])


def test_unsupported_surrogate_rejected():
    with pytest.raises(TypeError):
        FastLIFNode(surrogate_function=surrogate.PiecewiseQuadratic())
