"""AppTests of the Paper tables page."""


def _frames(at):
    """Every table on the page: the scrolling grids and the static tables (VGG, ResNet: all columns on screen,
    hyphens drawn non-breaking so "conv3-256" never splits; read back as plain hyphens)."""
    return [d.value for d in at.dataframe] + [d.value.replace("\u2011", "-", regex=True) for d in at.table]


def test_three_tables_render(app_factory):
    at = app_factory("papers")
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert len(at.tabs) == 3
    frames = _frames(at)
    vgg = next(f for f in frames if "A-LRN" in f.columns)
    assert "conv3-256 conv3-256 conv1-256" in vgg["C"].tolist()
    googlenet = next(f for f in frames if "#5×5 reduce" in f.columns)
    row = googlenet.set_index("type").loc["inception (3a)"]
    assert row["ops"] == 128049152 and row["ops (paper printed)"] == "128M"
    assert "BatchNorm" in row["torchvision differences"]
    resnet = next(f for f in frames if "152-layer" in f.columns)
    assert "[1×1, 64 | 3×3, 64 | 1×1, 256] ×3" in resnet["50-layer"].tolist()
    assert len(at.get("download_button")) == 5 + 3  # five tables, and the DOT file of each paper's diagram
    assert at.get("plotly_chart")


def test_korean_explanations(app_factory):
    at = app_factory("papers", lang="ko")
    assert not at.exception
    frames = _frames(at)
    googlenet = next(f for f in frames if "#5×5 축소 (reduce)" in f.columns)
    assert "편향" in googlenet.set_index("종류 (type)").loc["inception (4a)", "torchvision과의 차이"]
    # The papers' headers and row labels in Korean, the English term beside them; the cells stay the papers' text.
    resnet = next(f for f in frames if "152층 (152-layer)" in f.columns)
    assert "출력 크기 (output size)" in resnet.columns
    vgg = next(f for f in frames if "A-LRN" in f.columns)
    assert "합성곱 단계 3 (conv stage 3)" in vgg.index and "conv3-256 conv3-256 conv1-256" in vgg["C"].tolist()
    assert any("스트라이드" in m.value for m in at.markdown)
