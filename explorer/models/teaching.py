"""Small teaching networks from the course notes, registered beside torchvision's models."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from explorer.models.registry import register_model

DIGITS = tuple(str(d) for d in range(10))
# The ten Tiny ImageNet classes CNN Explainer's Tiny VGG was trained on.
TINY_VGG_CLASSES = ("lifeboat", "ladybug", "pizza", "bell pepper", "school bus",
                    "koala", "espresso", "red panda", "orange", "sport car")


class MnistCNN(nn.Module):
    """The seed notes' 2,762-parameter MNIST CNN: conv → ReLU → BN, as the notes order them.

    The notes end ``forward`` with a softmax; we return logits (CrossEntropyLoss applies log-softmax)
    and let the UI apply the softmax for probabilities.
    """

    def __init__(self, num_classes: int = 10, batch_norm: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if batch_norm else (lambda c: nn.Identity())
        self.conv1 = nn.Conv2d(1, 8, 5, stride=2)
        self.relu1 = nn.ReLU()
        self.BN1 = norm(8)
        self.conv2 = nn.Conv2d(8, 8, 5, stride=2)
        self.relu2 = nn.ReLU()
        self.BN2 = norm(8)
        self.conv3 = nn.Conv2d(8, 8, 3, stride=1)
        self.relu3 = nn.ReLU()
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None  # no row in tables when unused
        self.fc = nn.Linear(8 * 2 * 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.BN1(self.relu1(self.conv1(x)))
        x = self.BN2(self.relu2(self.conv2(x)))
        x = self.relu3(self.conv3(x))
        x = self.flatten(x)
        return self.fc(self.dropout(x) if self.dropout is not None else x)


# LeNet-5's C3 connection table (LeCun et al. 1998, Table I): which S2 maps feed each C3 map.
LENET_C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class ScaledTanh(nn.Module):
    """LeNet-5's squashing function f(a) = A·tanh(S·a), A = 1.7159, S = 2/3."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


class Subsampling(nn.Module):
    """LeNet-5's S-layers: the sum of each 2×2 block times one trainable coefficient, plus a bias, per map.

    Exposes ``kernel_size``/``stride``/``padding``/``dilation`` like a pooling layer, so shape and
    receptive-field tools treat it as one (it has the same geometry as a 2×2/2 average pool).
    """

    # The paper counts its seven layers "all of which contain trainable parameters": S2 and S4 add to depth
    # (explorer.history.compare), with one multiply per output unit (its coefficient) as their mult-adds.
    is_weight_layer = True

    def __init__(self, channels: int, kernel_size: int = 2) -> None:
        super().__init__()
        self.channels = channels
        self.kernel_size = (kernel_size, kernel_size)
        self.stride = (kernel_size, kernel_size)
        self.padding = (0, 0)
        self.dilation = (1, 1)
        self.weight = nn.Parameter(torch.empty(channels).uniform_(-0.5, 0.5))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size[0]
        summed = F.avg_pool2d(x, k, k) * (k * k)
        return summed * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class PartialConv2d(nn.Module):
    """A convolution in which each output map sees only some input maps (LeNet-5's C3).

    Only the connected kernels are parameters (60 × 5×5 + 16 biases = 1,516, as the paper counts);
    the full ``weight`` tensor (zeros where unconnected) is assembled on each forward.
    """

    is_weight_layer = True  # a convolution for counting (explorer.history.compare): depth and mult-adds

    def __init__(self, in_channels: int, table: tuple[tuple[int, ...], ...], kernel_size: int = 5) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = len(table)
        self.kernel_size = (kernel_size, kernel_size)
        self.stride = (1, 1)
        self.padding = (0, 0)
        self.dilation = (1, 1)
        self.groups = 1
        self.table = table
        pairs = [(o, i) for o, ins in enumerate(table) for i in ins]
        self.register_buffer("out_index", torch.tensor([o for o, _ in pairs]), persistent=False)
        self.register_buffer("in_index", torch.tensor([i for _, i in pairs]), persistent=False)
        fan_in = kernel_size * kernel_size * 3
        bound = 2.4 / fan_in  # the paper's uniform(-2.4/F, 2.4/F) initialisation
        self.connected_weight = nn.Parameter(torch.empty(len(pairs), kernel_size, kernel_size).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(self.out_channels))

    @property
    def weight(self) -> torch.Tensor:
        full = self.connected_weight.new_zeros(self.out_channels, self.in_channels, *self.kernel_size)
        full[self.out_index, self.in_index] = self.connected_weight
        return full

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias)


class EuclideanRBF(nn.Module):
    """LeNet-5's output layer: y_i = Σ_j (x_j − w_ij)². We return −y as logits (closest prototype wins)."""

    fixed_parameters = ("prototypes",)  # set by hand, never trained (explorer.training.transfer keeps them so)
    is_weight_layer = True  # the paper's output layer, fully connected to F6: counted like an FC layer

    def __init__(self, in_features: int = 84, num_classes: int = 10) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = num_classes
        # The paper fixed these by hand to stylised ±1 bitmaps of the characters (random ±1 is the same kind) and
        # never trained them: a parameter (so checkpoints keep it) with requires_grad False, which is why
        # LeNet-5 has 60,000 trainable parameters and 60,840 in all.
        self.prototypes = nn.Parameter(torch.randint(0, 2, (num_classes, in_features)).float() * 2 - 1,
                                       requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -((x.unsqueeze(1) - self.prototypes.unsqueeze(0)) ** 2).sum(-1)


class LeNet5(nn.Module):
    """LeNet-5 as published: C1 156, S2 12, C3 1,516, S4 32, C5 48,120, F6 10,164 trainable parameters (60,000)
    and the output's 840 fixed prototype values."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.C1 = nn.Conv2d(1, 6, 5)
        self.act1 = ScaledTanh()
        self.S2 = Subsampling(6)
        self.act2 = ScaledTanh()
        self.C3 = PartialConv2d(6, LENET_C3_TABLE, 5)
        self.act3 = ScaledTanh()
        self.S4 = Subsampling(16)
        self.act4 = ScaledTanh()
        self.C5 = nn.Conv2d(16, 120, 5)
        self.act5 = ScaledTanh()
        self.flatten = nn.Flatten()
        self.F6 = nn.Linear(120, 84)
        self.act6 = ScaledTanh()
        self.output = EuclideanRBF(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act2(self.S2(self.act1(self.C1(x))))
        x = self.act4(self.S4(self.act3(self.C3(x))))
        x = self.flatten(self.act5(self.C5(x)))
        return self.output(self.act6(self.F6(x)))


def lenet5_dense_module(num_classes: int = 10) -> nn.Sequential:
    """The common simplified LeNet-5: full C3, max pooling, ReLU, linear output."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes),
    )


class TinyVGG(nn.Module):
    """Tiny VGG after CNN Explainer: VGG blocks of (conv3, ReLU) ×2, padded, widths 8 → 16 → 32, max pool 2 after
    the first two, then global average pooling and a linear layer (18,514 parameters; 18,349 with the five
    shape classes).

    CNN Explainer's Tiny VGG has two unpadded blocks of conv3-10 and a linear layer over the flattened 10×13×13
    map. Its last conv sees only 14×14 input pixels while the built-in shapes are 28–54 pixels across, so a shape's
    flat interior looks like flat background to it and its Grad-CAM marks shape edges (issue 13). Here a third
    block brings the last conv's receptive field to 32×32 pixels (its 16×16 map is the Grad-CAM layer,
    ``block3``), and global average pooling (a CAM head) replaces flatten + linear, so a class score is the mean
    over positions of a linear mix of that map: the map of where the class was seen.
    """

    def __init__(self, num_classes: int = 10, widths: tuple[int, int, int] = (8, 16, 32)) -> None:
        super().__init__()

        def block(cin: int, cout: int, pool: bool) -> nn.Sequential:
            layers = [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                      nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True)]
            return nn.Sequential(*layers, nn.MaxPool2d(2)) if pool else nn.Sequential(*layers)

        self.block1 = block(3, widths[0], True)  # 64×64 → 32×32
        self.block2 = block(widths[0], widths[1], True)  # → 16×16
        self.block3 = block(widths[1], widths[2], False)  # 16×16, each unit sees 32×32 input pixels
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(widths[2], num_classes)
        # He initialisation: with torch's default one this six-conv ReLU stack without BatchNorm did not learn
        # at all in 10 epochs (chance accuracy).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(x)))
        return self.classifier(self.flatten(self.gap(x)))


class PlainBlock(nn.Module):
    """ResNet's BasicBlock with the shortcut removed (He et al. 2016's plain baseline)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1,
                 norm_layer=None) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        # ``downsample`` (the projection shortcut torchvision would add) is deliberately dropped.
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = norm_layer(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = norm_layer(planes)
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu2(self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x))))))


def _plain(layers: list[int], num_classes: int) -> nn.Module:
    from torchvision.models.resnet import ResNet  # here: importing torchvision costs ~1 s, and only these need it

    return ResNet(PlainBlock, layers, num_classes=num_classes)  # type: ignore[arg-type]


@register_model("mnist_cnn", input_shape=(1, 28, 28), family="Teaching", num_classes=10, categories=DIGITS,
                description="The seed notes' MNIST CNN: 3 convs with BatchNorm, 2,762 parameters.")
def mnist_cnn(num_classes: int | None = None, batch_norm: bool = True, dropout: float = 0.0) -> nn.Module:
    return MnistCNN(num_classes or 10, batch_norm=batch_norm, dropout=dropout)


@register_model("lenet5", input_shape=(1, 32, 32), family="LeNet", num_classes=10, categories=DIGITS,
                description="LeNet-5 as published (1998): C3 partial connections, trainable subsampling, RBF output.")
def lenet5(num_classes: int | None = None) -> nn.Module:
    return LeNet5(num_classes or 10)


@register_model("lenet5_dense", input_shape=(1, 32, 32), family="LeNet", num_classes=10, categories=DIGITS,
                description="The common simplified LeNet-5: full C3, max pooling, ReLU, linear output.")
def lenet5_dense(num_classes: int | None = None) -> nn.Module:
    return lenet5_dense_module(num_classes or 10)


@register_model("tiny_vgg", input_shape=(3, 64, 64), family="Teaching", num_classes=10,
                categories=TINY_VGG_CLASSES,
                description="Tiny VGG after CNN Explainer, 64×64 input: three blocks of two 3×3 convs (8, 16, 32 "
                            "filters) and global average pooling, so the last conv sees whole shapes.")
def tiny_vgg(num_classes: int | None = None) -> nn.Module:
    return TinyVGG(num_classes or 10)


@register_model("plain18", input_shape=(3, 224, 224), family="ResNet (plain)", num_classes=1000,
                description="ResNet-18's layout with every shortcut removed (the paper's plain-18).")
def plain18(num_classes: int | None = None) -> nn.Module:
    return _plain([2, 2, 2, 2], num_classes or 1000)


@register_model("plain34", input_shape=(3, 224, 224), family="ResNet (plain)", num_classes=1000,
                description="ResNet-34's layout with every shortcut removed (the paper's plain-34).")
def plain34(num_classes: int | None = None) -> nn.Module:
    return _plain([3, 4, 6, 3], num_classes or 1000)


class ZeroPadShortcut(nn.Module):
    """ResNet's option-A identity shortcut (He et al. 2016, §4.1): subsample by taking every ``stride``-th
    pixel and pad the new channels with zeros. No parameters, so a residual network with it has exactly the
    parameters of its plain twin (the paper's Table 2 comparison)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        extra = self.out_channels - self.in_channels
        return F.pad(x, (0, 0, 0, 0, 0, extra)) if extra > 0 else x


class OptionABlock(PlainBlock):
    """The plain block plus the identity shortcut F(x) + x (option A: zero-padded, no projection)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, norm_layer=None) -> None:
        super().__init__(inplanes, planes, stride, None, groups, base_width, dilation, norm_layer)
        # ``downsample`` (torchvision's 1×1 projection) is dropped: the shortcut below has no parameters.
        self.shortcut = ZeroPadShortcut(inplanes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.shortcut(x)
        residual = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))  # F(x)
        return self.relu2(residual + identity)


def _option_a(layers: list[int], num_classes: int) -> nn.Module:
    from torchvision.models.resnet import ResNet

    return ResNet(OptionABlock, layers, num_classes=num_classes)  # type: ignore[arg-type]


@register_model("resnet18_a", input_shape=(3, 224, 224), family="ResNet (option A)", num_classes=1000,
                description="ResNet-18 with the paper's option-A identity shortcuts (zero-padded, no projection): "
                            "exactly plain18's parameters plus F(x) + x.")
def resnet18_a(num_classes: int | None = None) -> nn.Module:
    return _option_a([2, 2, 2, 2], num_classes or 1000)


@register_model("resnet34_a", input_shape=(3, 224, 224), family="ResNet (option A)", num_classes=1000,
                description="ResNet-34 with the paper's option-A identity shortcuts (zero-padded, no projection): "
                            "exactly plain34's parameters plus F(x) + x.")
def resnet34_a(num_classes: int | None = None) -> nn.Module:
    return _option_a([3, 4, 6, 3], num_classes or 1000)
