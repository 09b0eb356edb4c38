"""A user's own model, named by reference (``--arch mynet.py:make`` / ``--arch pkg.mod:make``).

The callable receives, by keyword, only the parameters its signature names, from
:data:`ARGUMENTS` (``spiking_neuron``, the name SpikingJelly's model zoo uses, gets the
same factory as ``neuron``). It returns a SpikingJelly model (single- or multi-step, any
``BaseNode`` neurons) or a plain torch model. :class:`UserNet` wraps it so that every
command drives it the same way:

- spiking methods: the static image ``[N, ...]`` is repeated T times (direct encoding);
  event frames ``[N, T, ...]`` come as they are, T taken from the data. A multi-step
  model (any module in step mode 'm') gets ``[T, N, ...]`` at once; a single-step model
  is called once per step. Outputs are averaged over T (a model that already returns
  ``[N, classes]`` is taken as it is). The user's neurons stay as built (a PLIF stays a
  PLIF) unless ``model.neuron`` names a replacement.
- ANN methods: :func:`to_ann` swaps every SpikingJelly neuron for the method's activation
  (ReLU; sign for ``bnn-act-lt``); a static image is seen once (T = 1), event frames
  step through their T frames.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn

from ..errors import UsageError
from ..references import Source

__all__ = ["ARGUMENTS", "UserArchitecture", "UserNet", "to_ann", "replace_neurons", "is_neuron"]

#: What a user's callable may name in its signature; it receives those it names.
ARGUMENTS = ("num_classes", "in_channels", "input_size", "timesteps", "width", "neuron", "v_threshold", "tau",
             "fc_bn")
_ALIASES = {"spiking_neuron": "neuron"}  # SpikingJelly's model zoo
_CELL_KEYS = {"width": "model.width", "tau": "model.tau",
              "v_threshold": "model.v_threshold", "fc_bn": "model.fc_bn"}


def is_neuron(module: nn.Module) -> bool:
    """A SpikingJelly neuron node (``BaseNode``, or a memory module with a threshold, like ours)."""
    from ..energy.counter import is_neuron_node

    return is_neuron_node(module)


def _replace(model: nn.Module, make: Callable[[nn.Module], nn.Module]) -> int:
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if is_neuron(child):
                setattr(parent, name, make(child))
                count += 1
    return count


def to_ann(model: nn.Module, activation: str | Callable[..., nn.Module] = "relu") -> nn.Module:
    """Swap every SpikingJelly neuron of ``model`` (in place) for an ANN activation; returns ``model``.

    ``activation``: ``"relu"``, ``"sign"`` (the binary activation of BNN-1/1, Bi-Real
    gradient) or a factory ``f(step_mode=...) -> nn.Module``. Each replacement keeps the
    step mode of the neuron it replaces, so a multi-step model still takes ``[T, N, ...]``;
    feed it a static image once (``[1, N, ...]``).
    """
    from ..neuron import neurons

    if isinstance(activation, str):
        factories = {"relu": neurons.relu, "sign": neurons.sign}
        if activation not in factories:
            raise UsageError(f"unknown activation {activation!r}; valid: relu, sign, or a module factory")
        activation = factories[activation]
    _replace(model, lambda old: activation(step_mode=getattr(old, "step_mode", "s")))
    return model


def replace_neurons(model: nn.Module, factory: Callable[..., nn.Module]) -> int:
    """Replace every SpikingJelly neuron by ``factory(step_mode=...)`` (in place); returns how many."""
    return _replace(model, lambda old: factory(step_mode=getattr(old, "step_mode", "s")))


def _one_step_mode(model: nn.Module) -> None:
    modes = {m.step_mode for m in model.modules() if isinstance(getattr(m, "step_mode", None), str)}
    if len(modes) > 1:
        from .._sj import set_step_mode

        set_step_mode(model, "m")


def _multi_step(model: nn.Module) -> bool:
    return any(getattr(m, "step_mode", None) == "m" for m in model.modules())


class UserNet(nn.Module):
    """The user's model ``net`` with the input rule of the package (module docstring)."""

    def __init__(self, net: nn.Module, timesteps: int | None, frames: bool = False):
        super().__init__()
        self.net = net
        self.timesteps = int(timesteps) if timesteps else None  # None: an ANN method
        self.frames = bool(frames)
        self.multi_step = _multi_step(net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frames:  # [N, T, ...] event frames, as they come
            seq = x.transpose(0, 1)
        elif self.timesteps is None:
            if not self.multi_step:
                return self.net(x)
            seq = x.unsqueeze(0)
        else:
            seq = x.unsqueeze(0).expand(self.timesteps, *x.shape)
        if self.multi_step:
            out = self.net(seq)
            if out.dim() >= 3 and out.shape[0] == seq.shape[0] and out.shape[1] == x.shape[0]:
                return out.mean(0)
            return out
        return torch.stack([self.net(seq[t]) for t in range(seq.shape[0])]).mean(0)


class UserArchitecture:
    """A registered-architecture-like builder over a user's callable (see the module docstring)."""

    user_model = True

    def __init__(self, fn: Callable, source: Source):
        self.fn, self.source = fn, source
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            params = {}
        named = {}
        for p in params.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            arg = _ALIASES.get(p.name, p.name)
            if arg in ARGUMENTS:
                named[p.name] = arg
        self.named = named  # parameter name -> which value it receives
        self.uses = tuple(sorted({_CELL_KEYS[a] for a in named.values() if a in _CELL_KEYS}))

    def __call__(self, *, neuron, num_classes, in_channels, input_size, width, timesteps, fc_bn,
                 tau: float = 2.0, v_threshold: float = 1.0, replace: bool = False, frames: bool = False,
                 spiking: bool = True) -> nn.Module:
        values = {"num_classes": num_classes, "in_channels": in_channels, "input_size": input_size,
                  "timesteps": timesteps if timesteps else 1, "width": width, "neuron": neuron, "tau": tau,
                  "v_threshold": v_threshold, "fc_bn": fc_bn}
        kwargs = {p: values[a] for p, a in self.named.items()}
        ref = self.source.reference
        try:
            net = self.fn(**kwargs)
        except Exception as exc:  # noqa: BLE001 - the user's code: one line
            raise UsageError(f"architecture {ref!r}: calling it with {sorted(kwargs)} failed: "
                             f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}") from None
        if not isinstance(net, nn.Module):
            raise UsageError(f"architecture {ref!r} returned {type(net).__name__}, not a torch nn.Module")
        if "neuron" in self.named.values():  # our neurons (step mode 'm') in a model built for step mode 's':
            _one_step_mode(net)               # SpikingJelly's zoo sets the mode after building; so do we
        if not spiking:
            to_ann(net, neuron)
        elif replace:
            replace_neurons(net, neuron)
        return UserNet(net, timesteps if spiking else None, frames=frames)
