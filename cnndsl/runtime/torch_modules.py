"""Small nn.Modules of generated torch modules for ops torch has no module for (cnndsl.backends.torch_layers).

The torch backend copies each class a network uses verbatim (from its `class` line to the next class)
into the generated module, whose imports are the ones above. Must not import cnndsl.
"""

import torch
from torch import nn


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of each pixel of an NCHW tensor (torchvision's ConvNeXt LayerNorm2d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.nn.functional.layer_norm  # not super().forward: TorchScript has no super()
        if x.dim() == 2:
            return norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        y = norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class LayerScale(nn.Module):
    """A learned per-channel multiplier (torchvision's CNBlock.layer_scale), shape (C, 1, 1) or (C,)."""

    def __init__(self, shape: tuple[int, ...], init: float) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full(shape, init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class StochasticDepth(nn.Module):
    """Drops the whole input of a sample with probability p in training, scaling survivors by 1/(1-p)
    (torchvision's StochasticDepth, row mode); the identity at inference."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty([x.shape[0]] + [1] * (x.dim() - 1)).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)


class ChannelSlice(nn.Module):
    """Channels start..end-1 (x[:, start:end])."""

    def __init__(self, start: int, end: int) -> None:
        super().__init__()
        self.start, self.end = start, end

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.start : self.end]


class ChannelShuffle(nn.Module):
    """Channel shuffle as torchvision's ShuffleNet writes it (a view, a transpose): nn.ChannelShuffle's
    aten::channel_shuffle has no ONNX export."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class CenterCrop2d(nn.Module):
    """The size[0] x size[1] window at offset (top, left) (torchvision's center_crop offsets)."""

    def __init__(self, size: tuple[int, int], offset: tuple[int, int]) -> None:
        super().__init__()
        self.size, self.offset = size, offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (top, left), (h, w) = self.offset, self.size
        return x[:, :, top : top + h, left : left + w]
