"""ConvNeXt-T and ShuffleNet V2 1.0x against plain-torch re-implementations of torchvision's models
(torchvision itself is not a dependency): parameters exact, MACs within 0.5 %, and, at a reduced input
size with the torchvision model's weights loaded in order, the same function in the torch backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import cnndsl  # noqa: E402
from cnndsl.analysis import weight_specs  # noqa: E402
from cnndsl.analysis.figures import Figures  # noqa: E402
from cnndsl.backends import build  # noqa: E402

SPECS = Path(__file__).resolve().parent.parent / "specs"


# -- torchvision.models.convnext (v0.17), layer for layer ---------------------------------------------
class LayerNorm2d(nn.LayerNorm):
    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Permute(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.permute(*self.dims)


class LayerScale(nn.Module):
    """torchvision keeps CNBlock.layer_scale as a parameter of the block itself; here it is a module after
    the block so that state_dict order is execution order (the same tensor, (C, 1, 1), init 1e-6)."""

    def __init__(self, c):
        super().__init__()
        self.layer_scale = nn.Parameter(torch.ones(c, 1, 1) * 1e-6)


class CNBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim, bias=True),
            Permute([0, 2, 3, 1]),
            nn.LayerNorm(dim, eps=1e-6),
            nn.Linear(dim, 4 * dim, bias=True),
            nn.GELU(),
            nn.Linear(4 * dim, dim, bias=True),
            Permute([0, 3, 1, 2]),
        )
        self.scale = LayerScale(dim)

    def forward(self, x):
        return self.scale.layer_scale * self.block(x) + x  # stochastic depth: the identity at inference


def convnext_tiny():
    layers = [nn.Sequential(nn.Conv2d(3, 96, kernel_size=4, stride=4), LayerNorm2d(96, eps=1e-6))]
    for i, (dim, depth) in enumerate(zip([96, 192, 384, 768], [3, 3, 9, 3])):
        layers.append(nn.Sequential(*[CNBlock(dim) for _ in range(depth)]))
        if i < 3:
            layers.append(nn.Sequential(LayerNorm2d(dim, eps=1e-6), nn.Conv2d(dim, 2 * dim, kernel_size=2, stride=2)))
    return nn.Sequential(
        *layers, nn.AdaptiveAvgPool2d(1), LayerNorm2d(768, eps=1e-6), nn.Flatten(1), nn.Linear(768, 1000)
    )


# -- torchvision.models.shufflenetv2 (v0.17), layer for layer -----------------------------------------
def channel_shuffle(x, groups):
    n, c, h, w = x.size()
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride):
        super().__init__()
        self.stride = stride
        bf = oup // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(inp, inp, 3, stride, 1, bias=False, groups=inp),
                nn.BatchNorm2d(inp),
                nn.Conv2d(inp, bf, 1, bias=False),
                nn.BatchNorm2d(bf),
                nn.ReLU(inplace=True),
            )
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else bf, bf, 1, bias=False),
            nn.BatchNorm2d(bf),
            nn.ReLU(inplace=True),
            nn.Conv2d(bf, bf, 3, stride, 1, bias=False, groups=bf),
            nn.BatchNorm2d(bf),
            nn.Conv2d(bf, bf, 1, bias=False),
            nn.BatchNorm2d(bf),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, repeats=(4, 8, 4), channels=(24, 116, 232, 464, 1024)):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, 24, 3, 2, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        stages, inp = [], channels[0]
        for n, oup in zip(repeats, channels[1:4]):
            stages.append(
                nn.Sequential(InvertedResidual(inp, oup, 2), *[InvertedResidual(oup, oup, 1) for _ in range(n - 1)])
            )
            inp = oup
        self.stage2, self.stage3, self.stage4 = stages
        self.conv5 = nn.Sequential(nn.Conv2d(inp, 1024, 1, bias=False), nn.BatchNorm2d(1024), nn.ReLU(inplace=True))
        self.fc = nn.Linear(1024, 1000)

    def forward(self, x):
        x = self.stage4(self.stage3(self.stage2(self.maxpool(self.conv1(x)))))
        return self.fc(self.conv5(x).mean([2, 3]))


MODELS = {"convnext_tiny": convnext_tiny, "shufflenet_v2_x1_0": ShuffleNetV2}


def torch_macs(model, size=224):
    """Multiply-accumulates of Conv2d and Linear layers (torchvision's convention), counted by forward hooks."""
    total = 0

    def hook(m, inputs, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        else:
            total += out.numel() // out.shape[-1] * m.in_features * m.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("name", sorted(MODELS))
def test_params_exact_and_macs_within_half_a_percent(name):
    net = cnndsl.load(SPECS / f"{name}.cnn")
    fig = Figures(net)
    model = MODELS[name]()
    assert fig.total_params == sum(p.numel() for p in model.parameters())
    assert fig.total_macs == pytest.approx(torch_macs(model), rel=0.005)


def _load_in_order(net, model):
    """The torchvision-layout model's tensors, in order, under cnndsl's names (Linear (o, i) as a 1x1 conv)."""
    theirs = list(model.state_dict().values())
    ours = weight_specs(net)
    assert len(theirs) == len(ours)
    out = {}
    for (name, spec), t in zip(ours.items(), theirs):
        assert t.numel() == int(np.prod(spec.shape)), (name, tuple(t.shape), spec.shape)
        out[name] = t.reshape(spec.shape).clone()
    return out


@pytest.mark.parametrize("name", sorted(MODELS))
def test_same_function_as_torchvisions_layout_at_32x32(name):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    for m in model.modules():  # non-trivial norms and layer scales, so that misplaced ones show
        if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
        if isinstance(m, LayerScale):
            nn.init.uniform_(m.layer_scale, 0.5, 1.5)
    net = cnndsl.load(SPECS / f"{name}.cnn", input_shape=(3, 32, 32))
    ours = build(net, "torch").eval()
    ours.load_state_dict(_load_in_order(net, model))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torch_backend_agrees_with_the_reference_at_32x32(name):
    # numba: tests/test_numba_specs.py; cuda (simulator): tests/cuda/test_reach_specs.py, at the same size
    from cnndsl import reference

    net = cnndsl.load(SPECS / f"{name}.cnn", input_shape=(3, 32, 32))
    weights = reference.random_weights(net, 0)
    model = build(net, "torch").eval()
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, reference.run(net, weights, x), rtol=1e-4, atol=1e-4)
