"""ResNet-18 (He et al., 2016) with torchvision's state-dict keys, without torchvision.

torchvision cannot be imported on every machine this app runs on, but its ImageNet
checkpoint (``resnet18-f37072fd.pth``) is the weights people have. The module names here
(conv1, bn1, layer1..4 of BasicBlocks with conv1/bn1/conv2/bn2/downsample.0/.1, fc) match
torchvision's exactly, so that file loads with strict key matching. Loading never downloads.
"""

from __future__ import annotations

from torch import Tensor, nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 on 3-channel input. ``num_classes=None`` leaves out the classifier (``fc``)."""

    feature_channels = 512

    def __init__(self, num_classes: int | None = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._layer(64, 64, 1)
        self.layer2 = self._layer(64, 128, 2)
        self.layer3 = self._layer(128, 256, 2)
        self.layer4 = self._layer(256, 512, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes) if num_classes else None
        for m in self.modules():  # torchvision's initialisation, for training from scratch
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _layer(in_channels: int, channels: int, stride: int) -> nn.Sequential:
        return nn.Sequential(BasicBlock(in_channels, channels, stride), BasicBlock(channels, channels))

    def features(self, x: Tensor) -> Tensor:
        """layer4's output: (B, 512, ⌈S/32⌉, ⌈S/32⌉) for an S×S input."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x)).flatten(1)
        return x if self.fc is None else self.fc(x)


def feature_size(size: int) -> int:
    """Side of layer4's output for a ``size`` input (five stride-2 stages, each ⌊(s − 1)/2⌋ + 1)."""
    for _ in range(5):
        size = (size - 1) // 2 + 1
    return size
