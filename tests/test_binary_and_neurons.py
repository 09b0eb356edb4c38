"""Binary trained weights (BNN 1/32) and the binary neuron layers (docs/design.md §2.2, §2.3)."""

import pytest
import torch
from torch import nn

from spikingjelly_lt import plugins
from spikingjelly_lt._sj import functional
from spikingjelly_lt.pruners.dense import binarize_weights


def test_binary_weight_forward_and_clipped_ste_gradient():
    lin = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.5, -1.5, 0.25], [-0.25, 2.0, -0.5]]))
    binarize_weights(lin)
    alpha = (0.5 + 1.5 + 0.25 + 0.25 + 2.0 + 0.5) / 6
    expected = alpha * torch.tensor([[1.0, -1, 1], [-1, 1, -1]])
    torch.testing.assert_close(lin.weight, expected)
    x = torch.tensor([[1.0, 2.0, 3.0]])
    lin(x).sum().backward()
    latent = lin.parametrizations.weight.original
    # dL/dw_eff = x for each output row; clipped: zero where |W| > 1
    assert latent.grad.tolist() == [[1.0, 0.0, 3.0], [1.0, 0.0, 3.0]]


def test_dense_methods_ignore_sparsity_in_model_and_identity():
    from spikingjelly_lt.build import build_model
    from spikingjelly_lt.cell import Cell
    from spikingjelly_lt.methods import resolve
    from spikingjelly_lt.pruners.common import sparsity_report

    a, b = resolve(Cell(method="snn", sparsity=0.5)), resolve(Cell(method="snn", sparsity=0.9))
    assert a.hash == b.hash and "sparsity" not in a.key()
    assert sparsity_report(build_model(b, num_classes=10, in_channels=1, input_size=8))["sparsity"] == 0.0


@pytest.mark.parametrize("name", ["lif", "if"])
@pytest.mark.parametrize("step_mode", ["s", "m"])
def test_spiking_neurons_emit_exact_binary_spikes(name, step_mode):
    node = plugins.lookup("neurons", name)(step_mode=step_mode, tau=2.0)
    torch.manual_seed(0)
    x = torch.randn(4, 8, 16) * 2 if step_mode == "m" else torch.randn(8, 16) * 3
    out = node(x)
    assert out.shape == x.shape
    assert set(torch.unique(out).tolist()) == {0.0, 1.0}
    functional.reset_net(node)
    assert float(node.v if not isinstance(node.v, float) else node.v) == 0.0


def test_lif_tau_is_configurable_and_matches_membrane_formula():
    node = plugins.lookup("neurons", "lif")(step_mode="s", tau=4 / 3)
    node(torch.tensor([0.6]))
    # decay_input: v = v + (x - v) / tau from v = 0 -> 0.6 * 3/4 = 0.45, below threshold
    torch.testing.assert_close(node.v, torch.tensor([0.45]))


@pytest.mark.parametrize("step_mode", ["s", "m"])
def test_sign_outputs_plus_minus_one_and_bireal_gradient(step_mode):
    act = plugins.lookup("neurons", "sign")(step_mode=step_mode)
    x = torch.tensor([-2.0, -0.5, 0.0, 0.25, 0.9, 1.5], requires_grad=True)
    xin = x.view(2, 3) if step_mode == "m" else x
    out = act(xin)
    assert out.reshape(-1).tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0, 1.0]
    out.sum().backward()
    expected = [0.0, 2 - 2 * 0.5, 2.0, 2 - 2 * 0.25, 2 - 2 * 0.9, 0.0]
    torch.testing.assert_close(x.grad, torch.tensor(expected))


def test_sign_clipped_identity_gradient_option_and_bad_choice():
    act = plugins.lookup("neurons", "sign")(sign_gradient="ste")
    x = torch.tensor([-2.0, -1.0, 0.3, 1.5], requires_grad=True)
    act(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0]
    from spikingjelly_lt.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="valid: bireal, ste"):
        plugins.lookup("neurons", "sign")(sign_gradient="tanh")
