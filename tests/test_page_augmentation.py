"""AppTests for pages/augmentation.py: draws, code and the normalised tensor shown honestly."""
from __future__ import annotations

import numpy as np
import torch
from streamlit.testing.v1 import AppTest

from explorer.imaging import augment as A
from explorer.core import catalogue
from explorer.imaging import sample_image

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def open_page(**state) -> AppTest:
    at = AppTest.from_file("../app.py", default_timeout=60)
    at.session_state["sel_sample"] = "shapes"
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.switch_page("pages/augmentation.py").run()
    assert not at.exception, at.exception
    return at


def test_default_page_shows_draws_code_and_stats(tmp_path, monkeypatch):
    at = open_page(aug_n=4)
    assert not at.error
    captions = [c for img in at.get("image") for c in img.captions]
    assert [c for c in captions if "· seed" in c] == [f"#{i} · seed {i} · 3×256×256" for i in range(4)]
    code = at.code[0].value
    assert "v2.Compose([" in code and "v2.Normalize(mean=(0.485, 0.456, 0.406)" in code
    namespace: dict = {}
    sample_image("shapes").save(tmp_path / "augment_input.png")  # the picture the page offers beside the code
    monkeypatch.chdir(tmp_path)
    exec(code, namespace)  # noqa: S102 - the page's own generated code must run
    assert isinstance(namespace["transform"], torch.nn.Module)
    assert len(at.get("plotly_chart")) == 1


def test_identity_pipeline_with_normalisation_shows_hand_computed_stats():
    at = open_page(aug_n=2)
    for key in ("aug_hflip", "aug_translate", "aug_brightness", "aug_contrast", "aug_saturation", "aug_hue",
                "aug_grayscale"):
        at.slider(key=key).set_value(0.0)
    at.slider(key="aug_rotation").set_value(0).run()
    assert not at.exception and not at.error
    stats = at.dataframe[0].value
    pixels = np.asarray(sample_image("shapes"), dtype=np.float64).reshape(-1, 3) / 255.0
    by_hand = (pixels - MEAN) / STD
    np.testing.assert_allclose(stats.iloc[:, 1].to_numpy(dtype=float), by_hand.min(0), atol=1e-5)  # min
    np.testing.assert_allclose(stats.iloc[:, 2].to_numpy(dtype=float), by_hand.max(0), atol=1e-5)  # max
    np.testing.assert_allclose(stats.iloc[:, 3].to_numpy(dtype=float), by_hand.mean(0), atol=1e-5)  # mean
    text = " ".join(m.value for m in at.markdown)
    assert f"{by_hand.min():.3f}" in text and f"{by_hand.max():.3f}" in text


def test_same_seed_same_code_and_normalise_off():
    at = open_page(aug_n=3, aug_seed=42)
    assert "torch.manual_seed(42 + i)" in at.code[0].value
    at.toggle(key="aug_normalize").set_value(False)
    at.toggle(key="aug_crop").set_value(True).run()
    assert not at.exception
    at.select_slider(key="aug_crop_size").set_value(64)
    at.select_slider(key="aug_blur").set_value(5)
    at.slider(key="aug_erasing").set_value(0.5).run()
    assert not at.exception and not at.error
    code = at.code[0].value
    assert "Normalize" not in code and "RandomResizedCrop(size=(64, 64)" in code and "GaussianBlur(kernel_size=5" in code
    stats = at.dataframe[0].value
    assert stats.iloc[:, 1].min() >= 0.0 and stats.iloc[:, 2].max() <= 1.0  # pixel/255 stays in 0..1
    captions = [c for img in at.get("image") for c in img.captions]
    assert [c for c in captions if "· seed" in c] == [f"#{i} · seed {42 + i} · 3×64×64" for i in range(3)]


def test_korean_page_runs():
    at = open_page(lang="ko", aug_n=2)
    assert at.title[0].value == catalogue("ko")["aug.title"]
    assert not at.error


def test_page_draws_equal_library_draws():
    # The page's cached draws are the library's seeded draws of the preview image.
    from ui.filters_ui import cached_draws

    image = sample_image("shapes")
    config = A.AugmentConfig(hflip_p=0.5, rotation_degrees=15.0, normalize=True)
    got = cached_draws.__wrapped__("k", tuple(config.to_dict().items()), 3, 9, 320, image)
    want = A.draws(A.prepare_preview(image, 320), config, 3, 9)
    assert len(got) == 3
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w.numpy())
