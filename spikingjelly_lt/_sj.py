"""The one place that imports SpikingJelly (its API moves between releases).

Only modules that work without torchvision/torchaudio are imported here.
"""

from spikingjelly.activation_based import base, functional, layer, neuron, surrogate

__all__ = ["base", "functional", "layer", "neuron", "surrogate", "reset_net", "set_step_mode"]

reset_net = functional.reset_net
set_step_mode = functional.set_step_mode
