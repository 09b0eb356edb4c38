"""VGG-16 (cfg D) with BN: 13 conv3x3-BN-neuron, classifier Linear 512→classes.

Max-pools that would shrink the map below 1x1 (inputs smaller than 32x32) are left
out, and a global average pool sits before the classifier, so any input from 8x8 to
32x32 works; at 32x32 the layout is exactly cfg D.
"""

from __future__ import annotations

from torch import nn

from .. import hookimpl
from .._sj import layer
from .network import Network, scaled

__all__ = ["vgg16", "CFG_D"]

CFG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16(
    *,
    neuron,
    num_classes: int = 10,
    in_channels: int = 3,
    input_size: int = 32,
    width: float = 1.0,
    timesteps: int | None = None,
    **_,
) -> Network:
    """Build VGG-16; ``neuron`` is a zero-argument factory of activation modules."""
    c0 = scaled(CFG_D[0], width)
    encoder = nn.Sequential(layer.Conv2d(in_channels, c0, 3, 1, 1, bias=False), layer.BatchNorm2d(c0))
    body: list[nn.Module] = [neuron()]
    cin, size = c0, int(input_size)
    for v in CFG_D[1:]:
        if v == "M":
            if size >= 2:
                body.append(layer.MaxPool2d(2, 2))
                size //= 2
            continue
        cout = scaled(v, width)
        body += [layer.Conv2d(cin, cout, 3, 1, 1, bias=False), layer.BatchNorm2d(cout), neuron()]
        cin = cout
    body += [layer.AdaptiveAvgPool2d(1), layer.Flatten(), layer.Linear(cin, num_classes)]
    return Network(encoder, nn.Sequential(*body), timesteps)


vgg16.uses = ()  # cell keys the builder reads (see spikingjelly_lt.methods)


@hookimpl
def register_architectures(register):
    register("vgg16", vgg16)
