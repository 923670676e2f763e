"""The connection-table convolution of generated torch modules (cnndsl.backends.torch_backend).

The backend copies everything from `class TableConv2d` on verbatim into modules that use a connection
table; the imports above it are the ones such a module already has. Must not import cnndsl.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


class TableConv2d(nn.Module):
    """A convolution where output map k sees only the input maps in row k of a connection table.

    Only connected kernels are parameters: `weight` has shape (connections, kh, kw), rows in table order,
    so the parameter count is the table's. `forward` scatters them into a dense (out, in, kh, kw) kernel
    (differentiable; unconnected kernels stay zero) and runs an ordinary convolution.
    """

    def __init__(
        self,
        in_channels: int,
        table: tuple[tuple[int, ...], ...],
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
        fan_in: int = 1,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = len(table)
        self.kernel_size = nn.modules.utils._pair(kernel_size)
        self.stride = nn.modules.utils._pair(stride)
        self.padding = nn.modules.utils._pair(padding)
        self.dilation = nn.modules.utils._pair(dilation)
        index = [k * in_channels + i for k, row in enumerate(table) for i in row]
        # Not persistent: the state dict holds exactly the shared weight names.
        self.register_buffer("index", torch.tensor(index, dtype=torch.long), persistent=False)
        bound = 1 / math.sqrt(fan_in)
        self.weight = nn.Parameter(torch.empty(len(index), *self.kernel_size).uniform_(-bound, bound))
        if bias:
            self.bias = nn.Parameter(torch.empty(len(table)).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def extra_repr(self) -> str:
        connections = self.weight.shape[0]
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, connections={connections}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kernel_size
        dense = self.weight.new_zeros(self.out_channels * self.in_channels, kh, kw)
        dense = dense.index_copy(0, self.index, self.weight)
        dense = dense.view(self.out_channels, self.in_channels, kh, kw)
        return F.conv2d(x, dense, self.bias, self.stride, self.padding, self.dilation)
