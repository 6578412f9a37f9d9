"""The networks of the papers' studies, as plain PyTorch modules (digital).

``aihwkit.nn.conversion.convert_to_analog`` (through ``memdrift.mapping``) turns
them into analog networks; keeping them digital here lets one trained network be
deployed under many device configurations.

* ``mlp``            784-500-10 (HfOxSy/HfS2 MNIST study)
* ``mlp-256-128``    784-256-128-10 (TiO2-x weight transfer)
* ``lenet5``         LeNet-5 with conv depths 16 and 32
* ``cifar-resnet3``  three residual blocks (3×3-BN-ReLU-3×3-ReLU ‖ 1×1, add, max-pool)
                     + three fully connected layers, ~210k weights for 3×32×32
* ``resnet34``       torchvision's ResNet-34 (optional package)

Every constructor takes the input shape (C, H, W) and the class count, so the
same network runs on MNIST, the 8×8 digits or synthetic tensors.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from memdrift.errors import MemdriftError

NAMES = ("mlp", "mlp-256-128", "lenet5", "cifar-resnet3", "resnet34")


def _flat(shape: tuple[int, ...]) -> int:
    return int(math.prod(shape))


def mlp(input_shape: tuple[int, ...], classes: int, hidden: tuple[int, ...] = (500,)) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = _flat(input_shape)
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


def _features_out(features: nn.Module, input_shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        return int(features(torch.zeros(1, *input_shape)).numel())


def lenet5(input_shape: tuple[int, ...], classes: int, depths: tuple[int, int] = (16, 32)) -> nn.Module:
    # padded convolutions keep the network valid down to 8x8 inputs (scikit-learn digits)
    features = nn.Sequential(
        nn.Conv2d(input_shape[0], depths[0], 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(depths[0], depths[1], 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
    )
    n = _features_out(features, input_shape)
    return nn.Sequential(features, nn.Linear(n, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, classes))


class ResidualBlock(nn.Module):
    """Upper branch 3×3 conv-BN-ReLU-3×3 conv-ReLU, lower branch 1×1 conv; sum, then 2×2 max-pool."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.upper = nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                                   nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU())
        self.lower = nn.Conv2d(c_in, c_out, 1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.upper(x) + self.lower(x))


def cifar_resnet3(input_shape: tuple[int, ...], classes: int, channels: tuple[int, int, int] = (16, 32, 64),
                  fc: tuple[int, int] = (128, 64)) -> nn.Module:
    c = (input_shape[0],) + tuple(channels)
    features = nn.Sequential(*(ResidualBlock(c[i], c[i + 1]) for i in range(3)), nn.Flatten())
    n = _features_out(features, input_shape)
    return nn.Sequential(features, nn.Linear(n, fc[0]), nn.ReLU(), nn.Linear(fc[0], fc[1]), nn.ReLU(),
                         nn.Linear(fc[1], classes))


def resnet34(input_shape: tuple[int, ...], classes: int) -> nn.Module:
    try:
        from torchvision.models import resnet34 as tv_resnet34
    except ImportError:
        raise MemdriftError("network 'resnet34' needs torchvision, which is not installed (optional: "
                            "pip install memdrift[vision]); without it use one of "
                            f"{', '.join(n for n in NAMES if n != 'resnet34')}") from None
    net = tv_resnet34(weights=None, num_classes=classes)
    if input_shape[0] != 3:
        net.conv1 = nn.Conv2d(input_shape[0], 64, kernel_size=7, stride=2, padding=3, bias=False)
    return net


def build(name: str, input_shape: tuple[int, ...], classes: int) -> nn.Module:
    """Network ``name`` for inputs of ``input_shape`` (C, H, W) and ``classes`` outputs."""
    if len(input_shape) != 3:
        raise MemdriftError(f"input_shape = {input_shape!r} must be (channels, height, width)")
    if name == "mlp":
        return mlp(input_shape, classes, (500,))
    if name == "mlp-256-128":
        return mlp(input_shape, classes, (256, 128))
    if name == "lenet5":
        return lenet5(input_shape, classes)
    if name == "cifar-resnet3":
        return cifar_resnet3(input_shape, classes)
    if name == "resnet34":
        return resnet34(input_shape, classes)
    raise MemdriftError(f"network = {name!r} is unknown; allowed: {', '.join(NAMES)}")


def weight_count(net: nn.Module) -> int:
    """Weights a crossbar would store (conv and linear weights and biases; not BatchNorm)."""
    return sum(p.numel() for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d)) for p in m.parameters())
