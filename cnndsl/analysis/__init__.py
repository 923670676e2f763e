"""Pure passes over the IR: each takes a Network and returns figures keyed by node name."""

from .cost import activation_bytes, frozen_params, macs, peak_activation, trainable_params
from .params import param_counts, weight_specs
from .receptive import Field, receptive_fields

__all__ = [
    "Field",
    "activation_bytes",
    "frozen_params",
    "macs",
    "param_counts",
    "peak_activation",
    "receptive_fields",
    "trainable_params",
    "weight_specs",
]
