"""Weight parametrizations (SpikingJelly's ``layer/`` side): supermask scores, binary weights, masks
and top-k. Neurons are in :mod:`spikingjelly_lt.neuron`."""
