"""Pure passes over the IR: each takes a Network and returns figures keyed by node name."""

from .params import param_counts, weight_specs

__all__ = ["param_counts", "weight_specs"]
