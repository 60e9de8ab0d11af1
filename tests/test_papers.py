"""The regenerated paper tables against counts computed here from the papers' widths."""
from __future__ import annotations

import pytest
import torchvision

from explorer.history import papers
# GoogLeNet Table 1 widths (#1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj), input channels, map side.
INCEPTION = {
    "inception3a": ((64, 96, 128, 16, 32, 32), 192, 28), "inception3b": ((128, 128, 192, 32, 96, 64), 256, 28),
    "inception4a": ((192, 96, 208, 16, 48, 64), 480, 14), "inception4b": ((160, 112, 224, 24, 64, 64), 512, 14),
    "inception4c": ((128, 128, 256, 24, 64, 64), 512, 14), "inception4d": ((112, 144, 288, 32, 64, 64), 512, 14),
    "inception4e": ((256, 160, 320, 32, 128, 128), 528, 14),
    "inception5a": ((256, 160, 320, 32, 128, 128), 832, 7), "inception5b": ((384, 192, 384, 48, 128, 128), 832, 7),
}
# FIELD-NOTES reference mult-adds (millions) per block at 224×224.
FIELD_NOTES_MOPS = {"inception3a": 128.0, "inception3b": 304.3, "inception4a": 73.6, "inception4b": 87.9,
                    "inception4c": 99.9, "inception4d": 118.5, "inception4e": 170.0, "inception5a": 51.1,
                    "inception5b": 70.7}


def branch_weights(cin: int, w: tuple[int, ...], five: int = 5) -> int:
    a, r3, b, r5, c, p = w
    return cin * a + cin * r3 + 9 * r3 * b + cin * r5 + five * five * r5 * c + cin * p


@pytest.fixture(scope="module")
def googlenet():
    return papers.googlenet_table().set_index("key")


def test_googlenet_inception_rows_match_branch_widths(googlenet):
    for key, (widths, cin, side) in INCEPTION.items():
        row = googlenet.loc[key]
        weights = branch_weights(cin, widths)
        assert row["params"] == weights + sum(widths)  # one bias per filter
        assert row["ops"] == weights * side * side
        assert round(row["ops"] / 1e6, 1) == FIELD_NOTES_MOPS[key]
        assert tuple(int(row[c]) for c in ["#1×1", "#3×3 reduce", "#3×3", "#5×5 reduce", "#5×5", "pool proj"]) == widths
        out = widths[0] + widths[2] + widths[4] + widths[5]
        assert row["output size"] == f"{side}×{side}×{out}"
        assert row["depth"] == 2 and row["type"] == f"inception ({key[-2:]})"


def test_googlenet_torchvision_columns(googlenet):
    for key, (widths, cin, side) in INCEPTION.items():
        row = googlenet.loc[key]
        # torchvision: a 3×3 in the "5×5" branch, BatchNorm (2 parameters per channel) and no conv bias.
        weights = branch_weights(cin, widths, five=3)
        convs_out = widths[0] + widths[1] + widths[2] + widths[3] + widths[4] + widths[5]
        assert row["params (torchvision)"] == weights + 2 * convs_out
        assert row["ops (torchvision)"] == weights * side * side
        assert set(row["torchvision differences"].split("; ")) == {"batchnorm", "conv3_for_conv5"}
    assert "dropout_p" in googlenet.loc["dropout", "torchvision differences"]
    assert "no_lrn" in googlenet.loc["maxpool1", "torchvision differences"]


def test_googlenet_stem_head_and_total(googlenet):
    conv1 = googlenet.loc["conv1"]
    assert (conv1["patch size/stride"], conv1["output size"]) == ("7×7/2", "112×112×64")
    assert conv1["params"] == 7 * 7 * 3 * 64 + 64 and conv1["ops"] == 7 * 7 * 3 * 64 * 112 * 112
    stem = googlenet.loc["conv2+conv3"]
    assert (stem["patch size/stride"], stem["output size"], stem["depth"]) == ("3×3/1", "56×56×192", 2)
    assert (stem["#3×3 reduce"], stem["#3×3"]) == (64, 192)
    assert stem["ops"] == (64 * 64 + 9 * 64 * 192) * 56 * 56
    pools = googlenet[googlenet["type"] == "max pool"]["output size"].tolist()
    assert pools == ["56×56×64", "28×28×192", "14×14×480", "7×7×832"]
    assert googlenet.loc["avgpool", "patch size/stride"] == "7×7/1"
    assert googlenet.loc["dropout", "type"] == "dropout (40%)"
    assert googlenet.loc["fc", "params"] == 1024 * 1000 + 1000
    total = googlenet.loc["total"]
    assert total["depth"] == 22  # "22 layers deep when counting only layers with parameters"
    rows = googlenet.drop(index="total")
    assert total["params"] == rows["params"].sum() and total["ops"] == rows["ops"].sum()
    # Printed citations sit in their own columns, untouched.
    assert googlenet.loc["inception5a", "ops (paper printed)"] == "54M"
    assert googlenet.loc["conv1", "params (paper printed)"] == "2.7K"


def test_explain_differences():
    text = papers.explain_differences("batchnorm; conv3_for_conv5")
    assert "BatchNorm" in text and "3×3" in text
    assert papers.explain_differences("") == ""


# --- VGG ------------------------------------------------------------------------------------------

def test_vgg_config_table_reads_the_configurations():
    table = papers.vgg_config_table().set_index("row")
    assert list(table.columns) == ["A", "A-LRN", "B", "C", "D", "E"]
    assert table.loc["weight layers"].tolist() == [f"{n} weight layers" for n in (11, 11, 13, 16, 16, 19)]
    assert table.loc["conv stage 1", "A-LRN"] == "conv3-64 LRN"
    assert table.loc["conv stage 3", "C"] == "conv3-256 conv3-256 conv1-256"
    assert table.loc["conv stage 5", "E"] == " ".join(["conv3-512"] * 4)
    assert table.loc["FC 1"].tolist() == ["FC-4096"] * 6 and table.loc["FC 3"].tolist() == ["FC-1000"] * 6
    computed = [float(v) for v in table.loc["parameters (M, computed)"]]
    printed = [int(v) for v in table.loc["parameters (M, paper printed)"]]
    assert printed == [133, 133, 133, 134, 138, 144]
    assert [round(c) for c in computed] == printed


def test_vgg_summary_table_parameters():
    table = papers.vgg_summary_table().set_index("config")
    fc = (512 * 7 * 7 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)

    def conv(k, cin, cout):
        return k * k * cin * cout + cout

    a = conv(3, 3, 64) + conv(3, 64, 128) + conv(3, 128, 256) + conv(3, 256, 256) + conv(3, 256, 512) \
        + 3 * conv(3, 512, 512) + fc
    c = (conv(3, 3, 64) + conv(3, 64, 64) + conv(3, 64, 128) + conv(3, 128, 128) + conv(3, 128, 256)
         + conv(3, 256, 256) + conv(1, 256, 256) + conv(3, 256, 512) + conv(3, 512, 512) + conv(1, 512, 512)
         + 2 * conv(3, 512, 512) + conv(1, 512, 512) + fc)
    assert table.loc["A", "params"] == table.loc["A-LRN", "params"] == a
    assert table.loc["C", "params"] == c
    for config, twin in {"A": "vgg11", "B": "vgg13", "D": "vgg16", "E": "vgg19"}.items():
        assert table.loc[config, "torchvision_twin"] == twin
        assert table.loc[config, "params"] == torchvision.models.get_model_weights(twin).DEFAULT.meta["num_params"]


# --- ResNet ---------------------------------------------------------------------------------------

def test_resnet_table_layout():
    table = papers.resnet_table().set_index("layer name")
    assert table["output size"].tolist()[:7] == ["112×112", "56×56", "56×56", "28×28", "14×14", "7×7", "1×1"]
    blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
    stage_rows = table.iloc[2:6]
    for depth, counts in blocks.items():
        cells = stage_rows[f"{depth}-layer"].tolist()
        assert [cell.rsplit("×", 1)[1] for cell in cells] == [str(n) for n in counts]
    assert table.iloc[2]["18-layer"] == "[3×3, 64 | 3×3, 64] ×2"
    assert table.iloc[5]["50-layer"] == "[1×1, 512 | 3×3, 512 | 1×1, 2048] ×3"
    assert table.loc["conv1", "152-layer"] == "7×7, 64, stride 2"
    assert table.loc["FLOPs (paper printed)"].iloc[1:].tolist() == ["1.8×10⁹", "3.6×10⁹", "3.8×10⁹", "7.6×10⁹", "11.3×10⁹"]


def test_resnet_flops_against_torchvision_metadata_and_the_v1_stride_move():
    table = papers.resnet_flops_table().set_index("model")
    for depth in papers.RESNET_DEPTHS:
        meta = torchvision.models.get_model_weights(f"resnet{depth}").DEFAULT.meta
        assert table.loc[f"resnet{depth}", "gflops_v15"] == pytest.approx(meta["_ops"], abs=0.006)
        assert table.loc[f"resnet{depth}", "weight_layers"] == depth
    # v1 vs v1.5 (bottlenecks only): the first 1×1 of stages 3–5 runs at the input resolution in v1.5.
    # ResNet-50 widths: (in, bottleneck width, side before) = (256, 128, 56), (512, 256, 28), (1024, 512, 14).
    extra = sum(cin * w * (side * side - (side // 2) ** 2) for cin, w, side in [(256, 128, 56), (512, 256, 28),
                                                                                (1024, 512, 14)])
    row = table.loc["resnet50"]
    assert (row["gflops_v15"] - row["gflops_v1"]) == pytest.approx(extra / 1e9, abs=0.011)
    assert table.loc["resnet18", "gflops_v1"] == table.loc["resnet18", "gflops_v15"]  # basic blocks: no change
    for depth, printed in papers.RESNET_PRINTED_GFLOPS.items():
        assert abs(table.loc[f"resnet{depth}", "gflops_v1"] - printed) < 0.1
