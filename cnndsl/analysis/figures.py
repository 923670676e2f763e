"""Every figure of a network in one object, computed once by the passes and shared by
the report, the expectation checker and the lint rules."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ..ir import Network
from .cost import activation_bytes, macs, peak_activation, trainable_params
from .params import param_counts
from .receptive import Field, receptive_fields

MB = 10**6  # activation figures are in megabytes of 10^6 bytes, as torchinfo reports them


@dataclass(frozen=True)
class Figures:
    network: Network

    @cached_property
    def params(self) -> dict[str, int]:
        return param_counts(self.network)

    @cached_property
    def trainable(self) -> dict[str, int]:
        return trainable_params(self.network, self.params)

    @cached_property
    def macs(self) -> dict[str, int]:
        return macs(self.network)

    @cached_property
    def activation(self) -> dict[str, int]:
        return activation_bytes(self.network)

    @cached_property
    def _peak(self) -> tuple[int, dict[str, int]]:
        return peak_activation(self.network)

    @cached_property
    def fields(self) -> dict[str, Field]:
        return receptive_fields(self.network)

    # Totals -----------------------------------------------------------------------

    @property
    def total_params(self) -> int:
        return sum(self.params.values())

    @property
    def total_trainable(self) -> int:
        return sum(self.trainable.values())

    @property
    def total_macs(self) -> int:
        return sum(self.macs.values())

    @property
    def total_activation(self) -> int:
        """Bytes of every output but the input's: what a training step keeps for the backward pass."""
        return sum(b for name, b in self.activation.items() if name != "input")

    @property
    def peak_activation(self) -> int:
        return self._peak[0]

    @property
    def live_activation(self) -> dict[str, int]:
        return self._peak[1]

    @property
    def output_field(self) -> Field:
        return self.fields[self.network.output]

    @property
    def output_fields(self) -> tuple[Field, ...]:
        """Each output's receptive field, in declaration order."""
        return tuple(self.fields[o] for o in self.network.outputs)
