"""Reference models written the way torchvision writes them (torchvision itself is not installed)."""

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3(i, o, stride=1):
    return nn.Conv2d(i, o, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self, layers=(2, 2, 2, 2), num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        for _ in range(1, blocks):
            layers.append(BasicBlock(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


def resnet18(num_classes: int = 1000) -> ResNet:
    return ResNet((2, 2, 2, 2), num_classes)


def tiny_resnet(num_classes: int = 10) -> ResNet:
    """ResNet-10 layout (one block a stage): the numba test's model, quick to compile."""
    return ResNet((1, 1, 1, 1), num_classes)


class VGGish(nn.Module):
    """nn.Sequential of nn.Sequential, as torchvision's VGG with its `features` built stage by stage."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        stages, c = [], 3
        for width, n in ((16, 2), (32, 2), (32, 3)):
            layers = []
            for _ in range(n):
                layers += [nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
                c = width
            stages.append(nn.Sequential(*layers, nn.MaxPool2d(2, 2)))
        self.features = nn.Sequential(*stages)
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(c * 4 * 4, 64), nn.ReLU(True), nn.Linear(64, num_classes)
        )

    def forward(self, x):
        x = self.features(x)
        x = x.view(x.size(0), -1)
        return self.classifier(x)


class SqueezeExcitation(nn.Module):
    def __init__(self, c: int, squeeze: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, c, 1)

    def forward(self, x):
        scale = torch.sigmoid(self.fc2(F.relu(self.fc1(self.avgpool(x)))))
        return scale * x


class InvertedResidual(nn.Module):
    """MobileNetV2's block with SE, written with functional calls; the shortcut decided in Python."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int = 4):
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            SqueezeExcitation(hidden, max(1, cin // 4)),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x):
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class Inception(nn.Module):
    def __init__(self, cin: int, c1: int, c3: int, pool: int):
        super().__init__()
        self.branch1 = nn.Conv2d(cin, c1, 1)
        self.branch2 = nn.Sequential(nn.Conv2d(cin, c3, 1), nn.ReLU(), nn.Conv2d(c3, c3, 3, padding=1))
        self.branch3 = nn.Conv2d(cin, pool, 1)

    def forward(self, x):
        b3 = self.branch3(F.max_pool2d(x, 3, stride=1, padding=1))
        return F.relu(torch.cat([self.branch1(x), self.branch2(x), b3], 1))


class MobileIncept(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        self.blocks = nn.Sequential(
            InvertedResidual(16, 16, 1),
            InvertedResidual(16, 24, 2),
            InvertedResidual(24, 24, 1),
            InvertedResidual(24, 24, 1),
        )
        self.mix = nn.Sequential(Inception(24, 8, 16, 8), Inception(32, 8, 16, 8))
        self.head = nn.Linear(32, num_classes)

    def forward(self, x):
        x = self.mix(self.blocks(self.stem(x)))
        x = x.mean((2, 3))
        return self.head(F.dropout(x, 0.2, self.training))


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        x = self.conv(x)
        if x.sum() > 0:
            return x.relu()
        return x


class Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.act = nn.Softplus()

    def forward(self, x):
        return self.act(self.conv(x))


class UnsupportedFunction(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return torch.cumsum(self.conv(x), 1)


class LinearOnMap(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(14, 2)

    def forward(self, x):
        return self.fc(self.conv(x))


class ReshapeNotFlatten(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        x = self.conv(x)
        return x.view(x.size(0), x.size(1), -1)


class SharedWeights(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(self.conv(x))


class AddConstant(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x) + 1


class LabelClash(nn.Module):
    """A bare conv at the top (cnndsl names it conv1) and a module used once under the attribute conv1."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3)
        self.conv1 = nn.Sequential(nn.Conv2d(4, 4, 3), nn.ReLU())

    def forward(self, x):
        return self.conv1(self.stem(x))


class IntermediateLayerGetter(nn.ModuleDict):
    """torchvision.models._utils.IntermediateLayerGetter: runs the backbone's children in order and
    returns the outputs of those named in return_layers, as an OrderedDict."""

    def __init__(self, model: nn.Module, return_layers: dict[str, str]):
        layers, wanted = {}, dict(return_layers)
        for name, module in model.named_children():
            layers[name] = module
            wanted.pop(name, None)
            if not wanted:
                break
        super().__init__(layers)
        self.return_layers = dict(return_layers)

    def forward(self, x):
        from collections import OrderedDict

        out = OrderedDict()
        for name, module in self.items():
            x = module(x)
            if name in self.return_layers:
                out[self.return_layers[name]] = x
        return out


class FeaturePyramidNetwork(nn.Module):
    """torchvision.ops.FeaturePyramidNetwork with LastLevelMaxPool, as torchvision writes it: lateral
    1x1 convs, a top-down pathway that interpolates to the lateral's shape[-2:], 3x3 output convs."""

    def __init__(self, in_channels_list, out_channels: int):
        super().__init__()
        self.inner_blocks = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels_list)
        self.layer_blocks = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels_list)

    def get_result_from_inner_blocks(self, x, idx: int):
        out = x
        for i, module in enumerate(self.inner_blocks):
            if i == idx:
                out = module(x)
        return out

    def get_result_from_layer_blocks(self, x, idx: int):
        out = x
        for i, module in enumerate(self.layer_blocks):
            if i == idx:
                out = module(x)
        return out

    def forward(self, x):
        from collections import OrderedDict

        names = list(x.keys())
        x = list(x.values())
        last_inner = self.get_result_from_inner_blocks(x[-1], -1 % len(x))
        results = [self.get_result_from_layer_blocks(last_inner, len(x) - 1)]
        for idx in range(len(x) - 2, -1, -1):
            inner_lateral = self.get_result_from_inner_blocks(x[idx], idx)
            feat_shape = inner_lateral.shape[-2:]
            inner_top_down = F.interpolate(last_inner, size=feat_shape, mode="nearest")
            last_inner = inner_lateral + inner_top_down
            results.insert(0, self.get_result_from_layer_blocks(last_inner, idx))
        names.append("pool")
        results.append(F.max_pool2d(results[-1], 1, 2, 0))  # LastLevelMaxPool
        return OrderedDict(zip(names, results))


class BackboneWithFPN(nn.Module):
    """torchvision.models.detection.backbone_utils.BackboneWithFPN over a small ResNet."""

    def __init__(self, widths=(8, 16, 24, 32), out_channels: int = 16):
        super().__init__()
        body = ResNet((1, 1, 1, 1))
        for k, w in enumerate(widths):  # narrower stages than ResNet-18's, so the test is quick
            inplanes = widths[k - 1] if k else 64
            down = nn.Sequential(nn.Conv2d(inplanes, w, 1, stride=1 if k == 0 else 2, bias=False), nn.BatchNorm2d(w))
            setattr(body, f"layer{k + 1}", nn.Sequential(BasicBlock(inplanes, w, 1 if k == 0 else 2, down)))
        returns = {f"layer{k + 1}": str(k) for k in range(4)}
        self.body = IntermediateLayerGetter(body, return_layers=returns)
        self.fpn = FeaturePyramidNetwork(list(widths), out_channels)

    def forward(self, x):
        return self.fpn(self.body(x))


class TwoHeads(nn.Module):
    """A classifier with an auxiliary head on an earlier stage (GoogLeNet's aux logits), as a tuple."""

    def __init__(self, num_classes: int = 5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU())
        self.stage = nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())
        self.aux = nn.Linear(8, num_classes)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        x = self.stem(x)
        aux = self.aux(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.stage(x), 1), 1)), aux


class ReturnsTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = self.conv(x)
        return y, y


class ChannelLast(nn.Module):
    """A channel-last map that nothing brings back: cnndsl has no such layout."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x).permute(0, 2, 3, 1).relu()


class DenseLayers(nn.Module):
    """DenseNet's dense connections: each layer reads the concatenation of every earlier output."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(7, 4, 3, padding=1)
        self.conv3 = nn.Conv2d(11, 4, 1)

    def forward(self, x):
        x1 = self.conv1(x)
        x2 = self.conv2(torch.cat([x, x1], 1))
        return self.conv3(torch.cat([x, x1, x2], 1))
