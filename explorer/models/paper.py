"""Networks exactly as the 2014 papers describe them, registered beside torchvision's models.

* VGG (Simonyan & Zisserman, 2014), configurations A, A-LRN, B, C, D and E, all built from one
  configuration table (:data:`VGG_CONFIGS`, written in the paper's own notation). The module layout is
  torchvision's (``features`` / ``avgpool`` / ``classifier``), so ``vgg_a``, ``vgg_b``, ``vgg_d`` and
  ``vgg_e`` have exactly the state-dict names and shapes of torchvision's ``vgg11``, ``vgg13``, ``vgg16``
  and ``vgg19`` and can load their pretrained weights. A-LRN and C have no torchvision counterpart.
* GoogLeNet (Szegedy et al., 2014), ``googlenet_paper``: the widths of the paper's Table 1, real 5×5
  branches, biases and no BatchNorm, local response normalisation in the stem, and the two auxiliary
  classifiers, which only run in training mode (evaluation returns the logits alone). Module names follow
  torchvision's ``googlenet`` (``conv1``, ``inception3a.branch2.1.conv`` ...) so the two can be compared
  layer by layer.
* AlexNet (Krizhevsky et al., 2012), ``alexnet_paper``: 227×227 input, 96 filters in conv1, LRN, two-group
  convolutions, ~61 M parameters (torchvision's ``alexnet`` is the later one-GPU variant: 64/192/384/256/256
  filters, no LRN, 224 input).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple

import torch
import torch.nn as nn
from torchvision.models import VGG11_Weights, VGG13_Weights, VGG16_Weights, VGG19_Weights

from explorer.models.registry import register_model

# --- VGG -----------------------------------------------------------------------------------------

# The paper's Table 1, one list of tokens per column: "convK-N" is a K×K convolution with N filters
# (stride 1, "same" padding, ReLU after it), "LRN" local response normalisation, "maxpool" a 2×2/2 max
# pooling. Every configuration ends with FC-4096, FC-4096, FC-1000 and a soft-max (:data:`VGG_CLASSIFIER`).
VGG_CONFIGS: dict[str, tuple[str, ...]] = {
    "A": ("conv3-64", "maxpool", "conv3-128", "maxpool", "conv3-256", "conv3-256", "maxpool",
          "conv3-512", "conv3-512", "maxpool", "conv3-512", "conv3-512", "maxpool"),
    "A-LRN": ("conv3-64", "LRN", "maxpool", "conv3-128", "maxpool", "conv3-256", "conv3-256", "maxpool",
              "conv3-512", "conv3-512", "maxpool", "conv3-512", "conv3-512", "maxpool"),
    "B": ("conv3-64", "conv3-64", "maxpool", "conv3-128", "conv3-128", "maxpool", "conv3-256", "conv3-256",
          "maxpool", "conv3-512", "conv3-512", "maxpool", "conv3-512", "conv3-512", "maxpool"),
    "C": ("conv3-64", "conv3-64", "maxpool", "conv3-128", "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "conv1-256", "maxpool", "conv3-512", "conv3-512", "conv1-512", "maxpool",
          "conv3-512", "conv3-512", "conv1-512", "maxpool"),
    "D": ("conv3-64", "conv3-64", "maxpool", "conv3-128", "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "conv3-256", "maxpool", "conv3-512", "conv3-512", "conv3-512", "maxpool",
          "conv3-512", "conv3-512", "conv3-512", "maxpool"),
    "E": ("conv3-64", "conv3-64", "maxpool", "conv3-128", "conv3-128", "maxpool",
          "conv3-256", "conv3-256", "conv3-256", "conv3-256", "maxpool",
          "conv3-512", "conv3-512", "conv3-512", "conv3-512", "maxpool",
          "conv3-512", "conv3-512", "conv3-512", "conv3-512", "maxpool"),
}
VGG_HIDDEN = 4096
VGG_DROPOUT = 0.5
# Krizhevsky et al.'s LRN settings, which the VGG paper reuses for A-LRN.
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0
# Registry name of each configuration, and the torchvision model with the same layout (if any).
VGG_MODEL_NAMES: dict[str, str] = {"A": "vgg_a", "A-LRN": "vgg_a_lrn", "B": "vgg_b", "C": "vgg_c",
                                   "D": "vgg_d", "E": "vgg_e"}
VGG_TORCHVISION_TWIN: dict[str, str] = {"A": "vgg11", "B": "vgg13", "D": "vgg16", "E": "vgg19"}


def local_response_norm() -> nn.LocalResponseNorm:
    """Krizhevsky et al.'s b = a / (k + α·Σa²)^β over n = 5 neighbouring maps. PyTorch's LocalResponseNorm divides
    its ``alpha`` by n (Caffe's convention), so the paper's α is passed as α·n."""
    return nn.LocalResponseNorm(size=LRN_SIZE, alpha=LRN_ALPHA * LRN_SIZE, beta=LRN_BETA, k=LRN_K)


def _parse_vgg_token(token: str) -> tuple[int, int]:
    """``"conv3-64"`` → (kernel 3, width 64)."""
    kind, width = token.split("-")
    return int(kind[len("conv"):]), int(width)


def vgg_features(config: tuple[str, ...], in_channels: int = 3) -> nn.Sequential:
    """torchvision's ``make_layers`` generalised to K×K convolutions and LRN: conv, ReLU, ..., MaxPool."""
    layers: list[nn.Module] = []
    channels = in_channels
    for token in config:
        if token == "maxpool":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        elif token == "LRN":
            layers.append(local_response_norm())
        else:
            kernel, width = _parse_vgg_token(token)
            layers += [nn.Conv2d(channels, width, kernel_size=kernel, padding=kernel // 2), nn.ReLU(inplace=True)]
            channels = width
    return nn.Sequential(*layers)


class PaperVGG(nn.Module):
    """A VGG configuration in torchvision's layout (``features``, ``avgpool``, ``classifier``).

    The adaptive 7×7 average pool is torchvision's addition: at 224×224 the map is already 7×7 and it does
    nothing; at other sizes it lets the 4096-wide classifier run (the paper evaluated larger images by
    turning the FC layers into convolutions instead).
    """

    def __init__(self, config_name: str, num_classes: int = 1000, dropout: float = VGG_DROPOUT) -> None:
        super().__init__()
        self.config_name = config_name
        config = VGG_CONFIGS[config_name]
        self.features = vgg_features(config)
        last_width = _parse_vgg_token([t for t in config if t.startswith("conv")][-1])[1]
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(last_width * 7 * 7, VGG_HIDDEN), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(VGG_HIDDEN, VGG_HIDDEN), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(VGG_HIDDEN, num_classes),
        )
        _init_like_torchvision_vgg(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _init_like_torchvision_vgg(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def _vgg_builder(config_name: str):
    def build(num_classes: int | None = None, weights: Any = None) -> nn.Module:
        model = PaperVGG(config_name, num_classes=num_classes or 1000)
        if weights is not None:
            # Same names and shapes as torchvision's twin: its weights load unchanged.
            model.load_state_dict(weights.get_state_dict(progress=False, check_hash=True))
        return model

    build.__name__ = VGG_MODEL_NAMES[config_name]
    return build


def _vgg_weight_layers(config_name: str) -> int:
    return sum(t.startswith("conv") for t in VGG_CONFIGS[config_name]) + 3


_VGG_WEIGHTS: dict[str, Any] = {"A": VGG11_Weights, "B": VGG13_Weights, "D": VGG16_Weights, "E": VGG19_Weights}
_VGG_NOTES = {
    "A": "the shallowest configuration",
    "A-LRN": "A with local response normalisation after the first convolution",
    "B": "two 3×3 convolutions in every stage",
    "C": "B plus a 1×1 convolution at the end of the last three stages",
    "D": "three 3×3 convolutions in the last three stages (VGG-16)",
    "E": "four 3×3 convolutions in the last three stages (VGG-19)",
}

for _cfg, _name in VGG_MODEL_NAMES.items():
    _weights_enum = _VGG_WEIGHTS.get(_cfg)
    _description = (f"VGG configuration {_cfg} from the paper's Table 1 ({_vgg_weight_layers(_cfg)} weight layers): "
                    f"{_VGG_NOTES[_cfg]}.")
    if _weights_enum is not None:
        _description += (f" Same layout as torchvision's {VGG_TORCHVISION_TWIN[_cfg]}; "
                         "pretrained weights are torchvision's, not the paper's.")
    register_model(
        _name, input_shape=(3, 224, 224), family="VGG (paper)", description=_description,
        weights_enum=_weights_enum, num_classes=1000,
        categories=tuple(_weights_enum.DEFAULT.meta["categories"]) if _weights_enum is not None else None,
    )(_vgg_builder(_cfg))


def vgg_a(num_classes: int | None = None) -> nn.Module:
    return PaperVGG("A", num_classes or 1000)


def vgg_a_lrn(num_classes: int | None = None) -> nn.Module:
    return PaperVGG("A-LRN", num_classes or 1000)


def vgg_b(num_classes: int | None = None) -> nn.Module:
    return PaperVGG("B", num_classes or 1000)


def vgg_c(num_classes: int | None = None) -> nn.Module:
    return PaperVGG("C", num_classes or 1000)


def vgg_d(num_classes: int | None = None) -> nn.Module:
    return PaperVGG("D", num_classes or 1000)


def vgg_e(num_classes: int | None = None) -> nn.Module:
    return PaperVGG("E", num_classes or 1000)


# --- GoogLeNet -----------------------------------------------------------------------------------

class InceptionWidths(NamedTuple):
    """One row of the paper's Table 1: #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj."""

    n1x1: int
    n3x3_reduce: int
    n3x3: int
    n5x5_reduce: int
    n5x5: int
    pool_proj: int

    @property
    def out_channels(self) -> int:
        return self.n1x1 + self.n3x3 + self.n5x5 + self.pool_proj


GOOGLENET_INCEPTION: dict[str, InceptionWidths] = {
    "inception3a": InceptionWidths(64, 96, 128, 16, 32, 32),
    "inception3b": InceptionWidths(128, 128, 192, 32, 96, 64),
    "inception4a": InceptionWidths(192, 96, 208, 16, 48, 64),
    "inception4b": InceptionWidths(160, 112, 224, 24, 64, 64),
    "inception4c": InceptionWidths(128, 128, 256, 24, 64, 64),
    "inception4d": InceptionWidths(112, 144, 288, 32, 64, 64),
    "inception4e": InceptionWidths(256, 160, 320, 32, 128, 128),
    "inception5a": InceptionWidths(256, 160, 320, 32, 128, 128),
    "inception5b": InceptionWidths(384, 192, 384, 48, 128, 128),
}
GOOGLENET_DROPOUT = 0.4
AUX_DROPOUT = 0.7


class ConvReLU(nn.Module):
    """A convolution with its bias and a ReLU: the paper's unit ("all convolutions use rectified linear
    activation"). Named ``conv`` like torchvision's ``BasicConv2d`` so weights line up by name."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x))


class PaperInception(nn.Module):
    """Figure 2(b): 1×1 | 1×1 → 3×3 | 1×1 → 5×5 | 3×3 max pool → 1×1, concatenated along channels."""

    def __init__(self, in_channels: int, w: InceptionWidths) -> None:
        super().__init__()
        self.widths = w
        self.branch1 = ConvReLU(in_channels, w.n1x1, 1)
        self.branch2 = nn.Sequential(ConvReLU(in_channels, w.n3x3_reduce, 1),
                                     ConvReLU(w.n3x3_reduce, w.n3x3, 3, padding=1))
        self.branch3 = nn.Sequential(ConvReLU(in_channels, w.n5x5_reduce, 1),
                                     ConvReLU(w.n5x5_reduce, w.n5x5, 5, padding=2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                                     ConvReLU(in_channels, w.pool_proj, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class PaperAux(nn.Module):
    """The auxiliary classifier of section 5: 5×5/3 average pool, 1×1 conv (128), FC-1024, dropout 70 %,
    linear classifier."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.avgpool = nn.AvgPool2d(5, stride=3)
        self.conv = ConvReLU(in_channels, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(AUX_DROPOUT)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.avgpool(x))
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, (4, 4)), 1)  # no-op at 224×224
        return self.fc2(self.dropout(self.relu(self.fc1(x))))


class GoogLeNetPaperOutputs(NamedTuple):
    logits: torch.Tensor
    aux_logits2: torch.Tensor  # the head after inception (4d)
    aux_logits1: torch.Tensor  # the head after inception (4a)


class GoogLeNetPaper(nn.Module):
    """GoogLeNet as in the paper's Table 1 and Figure 3.

    In training mode ``forward`` returns :class:`GoogLeNetPaperOutputs` (main and auxiliary logits, in
    torchvision's order); in evaluation mode only the main logits, as the paper discards the auxiliary
    networks at inference time.
    """

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = ConvReLU(3, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.lrn1 = local_response_norm()
        self.conv2 = ConvReLU(64, 64, 1)  # the "#3×3 reduce" of the second stem row
        self.conv3 = ConvReLU(64, 192, 3, padding=1)
        self.lrn2 = local_response_norm()
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        blocks = OrderedDict()
        channels = 192
        for name, widths in GOOGLENET_INCEPTION.items():
            blocks[name] = PaperInception(channels, widths)
            channels = widths.out_channels
        self.inception3a, self.inception3b = blocks["inception3a"], blocks["inception3b"]
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a, self.inception4b = blocks["inception4a"], blocks["inception4b"]
        self.inception4c, self.inception4d = blocks["inception4c"], blocks["inception4d"]
        self.inception4e = blocks["inception4e"]
        self.maxpool4 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception5a, self.inception5b = blocks["inception5a"], blocks["inception5b"]
        self.aux1 = PaperAux(GOOGLENET_INCEPTION["inception4a"].out_channels, num_classes)
        self.aux2 = PaperAux(GOOGLENET_INCEPTION["inception4d"].out_channels, num_classes)
        # The paper's 7×7/1 average pool; adaptive so that other input sizes still run.
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(GOOGLENET_DROPOUT)
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():
            # He initialisation: without BatchNorm, small-std init makes a random 22-layer net output ~0.
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetPaperOutputs:
        x = self.lrn1(self.maxpool1(self.conv1(x)))
        x = self.maxpool2(self.lrn2(self.conv3(self.conv2(x))))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        logits = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        if self.training:
            return GoogLeNetPaperOutputs(logits, aux2, aux1)
        return logits


@register_model("googlenet_paper", input_shape=(3, 224, 224), family="GoogLeNet (paper)", num_classes=1000,
                description="GoogLeNet as in the paper's Table 1: 5×5 branches, biases, no BatchNorm, LRN in "
                            "the stem, auxiliary classifiers in training mode only.")
def googlenet_paper(num_classes: int | None = None) -> nn.Module:
    return GoogLeNetPaper(num_classes or 1000)


# --- AlexNet ---------------------------------------------------------------------------------------

class AlexNetPaper(nn.Module):
    """AlexNet as the course notes and Krizhevsky et al. (2012) describe it, on one device.

    227×227 input (the paper prints 224, but (224 − 11)/4 + 1 is not whole: 227 gives its 55×55); conv1 96 filters
    11×11/4 → 96×55×55; ReLU, LRN and overlapping 3×3/2 max pooling after conv1 and conv2 (the paper's order:
    the notes' "CONV – Pool – LRN" puts LRN after the pool); conv2, conv4 and conv5 split into two groups
    (``groups=2``: the paper's two GPUs, each half of the filters seeing only its half of the input maps), conv3
    sees all 256 maps; FC-4096, FC-4096, FC-1000 with 50 % dropout on the two hidden layers' outputs:
    60,965,224 parameters (the paper's "60 million"). Module layout follows torchvision's ``alexnet``
    (``features`` / ``avgpool`` / ``classifier``), so the two compare layer by layer.
    LRN uses the paper's k = 2, n = 5, α = 10⁻⁴, β = 0.75 (PyTorch divides α by n, hence α·n here).
    """

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()

        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(inplace=True), local_response_norm(), nn.MaxPool2d(3, stride=2),
            nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(inplace=True), local_response_norm(), nn.MaxPool2d(3, stride=2),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))  # the identity at 227×227 (6×6 already); other sizes still run
        # Dropout on the outputs of fc6 and fc7 ("dropout in the first two fully-connected layers", the reference
        # Caffe model's drop6/drop7); torchvision's alexnet drops their inputs instead. The head stays classifier.6.
        self.classifier = nn.Sequential(
            nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(4096, num_classes),
        )
        for m in self.modules():  # the paper: N(0, 0.01) weights; biases 1 in conv2, conv4, conv5 and the FCs
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
        for index in (4, 10, 12):
            nn.init.ones_(self.features[index].bias)
        for index in (0, 3):
            nn.init.ones_(self.classifier[index].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


@register_model("alexnet_paper", input_shape=(3, 227, 227), family="AlexNet (paper)", num_classes=1000,
                description="AlexNet as in the paper and the course notes: 227×227 input, 96 filters in conv1 "
                            "(96×55×55), LRN, two-group convolutions, ~61 M parameters.")
def alexnet_paper(num_classes: int | None = None) -> nn.Module:
    return AlexNetPaper(num_classes or 1000)
