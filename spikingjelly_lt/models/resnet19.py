"""ResNet-19 as in TET / Kim et al. (12.63M parameters at width 1, 10 classes).

conv3x3 64 stem + BN + neuron; BasicBlocks [3, 3, 2] at 128/256/512, strides 1/2/2
(1x1 conv + BN shortcut where the shape changes); global average pool; FC 512→256,
neuron, FC 256→classes. ``fc_bn`` adds a BatchNorm1d after FC 512→256: at small
widths the spiking FC layer otherwise tends to fall silent (docs/design.md §2.5).
"""

from __future__ import annotations

from torch import nn

from .. import hookimpl
from .._sj import layer
from .network import Network, scaled

__all__ = ["resnet19", "BasicBlock"]


class BasicBlock(nn.Module):
    """conv-BN-neuron-conv-BN, add the shortcut, neuron."""

    def __init__(self, cin: int, cout: int, stride: int, neuron):
        super().__init__()
        self.conv1 = layer.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = layer.BatchNorm2d(cout)
        self.sn1 = neuron()
        self.conv2 = layer.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = layer.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                layer.Conv2d(cin, cout, 1, stride, bias=False), layer.BatchNorm2d(cout)
            )
        self.sn2 = neuron()

    def forward(self, x):
        out = self.sn1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.sn2(out + self.shortcut(x))


def resnet19(
    *,
    neuron,
    num_classes: int = 10,
    in_channels: int = 3,
    input_size: int = 32,
    width: float = 1.0,
    timesteps: int | None = None,
    fc_bn: bool = False,
    **_,
) -> Network:
    """Build ResNet-19; ``neuron`` is a zero-argument factory of activation modules."""
    c0 = scaled(64, width)
    encoder = nn.Sequential(layer.Conv2d(in_channels, c0, 3, 1, 1, bias=False), layer.BatchNorm2d(c0))
    blocks: list[nn.Module] = [neuron()]
    cin = c0
    for channels, n_blocks, stride in ((128, 3, 1), (256, 3, 2), (512, 2, 2)):
        cout = scaled(channels, width)
        for i in range(n_blocks):
            blocks.append(BasicBlock(cin, cout, stride if i == 0 else 1, neuron))
            cin = cout
    hidden = scaled(256, width)
    head = [layer.AdaptiveAvgPool2d(1), layer.Flatten(), layer.Linear(cin, hidden)]
    if fc_bn:
        head.append(layer.BatchNorm1d(hidden))
    head += [neuron(), layer.Linear(hidden, num_classes)]
    return Network(encoder, nn.Sequential(*blocks, *head), timesteps)


resnet19.uses = ("model.fc_bn",)  # cell keys the builder reads (see spikingjelly_lt.methods)


@hookimpl
def register_architectures(register):
    register("resnet19", resnet19)
