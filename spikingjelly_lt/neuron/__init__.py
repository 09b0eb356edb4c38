"""Neurons (SpikingJelly's ``neuron/``): the registered neuron kinds (LIF, ReLU, sign) and the fused
LIF node with its C++ kernel. Weight parametrizations are in :mod:`spikingjelly_lt.nn`."""
