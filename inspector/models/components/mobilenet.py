"""MobileNetV2 (Sandler et al., CVPR 2018) with torchvision's state-dict keys.

Written here because torchvision cannot be imported beside every torch build; the keys
(``features.N...``) match torchvision's ``mobilenet_v2-b0353104.pth``, so ImageNet weights load
with strict key matching (``inspector.models.components.pretrained.load_weights``).
"""

from __future__ import annotations

from torch import Tensor, nn

# (expansion, channels, repeats, first stride) of the inverted-residual stages, as in the paper
_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _conv_bn_relu6(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        layers = [] if expansion == 1 else [_conv_bn_relu6(c_in, hidden, 1)]
        layers += [_conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden), nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """The convolutional trunk (``features``, 19 blocks); no classifier.

    Block i's output has stride 2, 2, 4, 4, 8, 8, 8, 16 … for i = 0, 1, 2 …; see ``STRIDE_TAPS``.
    """

    STRIDE_TAPS = {2: 1, 4: 3, 8: 6, 16: 13}  # the last block at each stride, up to 16
    TAP_CHANNELS = {2: 16, 4: 24, 8: 32, 16: 96}
    feature_channels = 1280  # the last block's, at stride 32

    def __init__(self) -> None:
        super().__init__()
        blocks: list[nn.Module] = [_conv_bn_relu6(3, 32, 3, 2)]
        c_in = 32
        for expansion, c_out, repeats, stride in _STAGES:
            for i in range(repeats):
                blocks.append(InvertedResidual(c_in, c_out, stride if i == 0 else 1, expansion))
                c_in = c_out
        blocks.append(_conv_bn_relu6(c_in, self.feature_channels, 1))
        self.features = nn.Sequential(*blocks)
