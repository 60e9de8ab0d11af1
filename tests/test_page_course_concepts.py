"""pages/course_concepts.py (AppTest): every tab runs on the sidebar's model, in both languages; the numbers
it shows are checked against hand formulas."""
from __future__ import annotations

import pytest


def test_page_runs_with_batchnorm_model(app_factory):
    at = app_factory("course_concepts", sel_model="mnist_cnn", sel_weights="none")
    assert not at.exception, at.exception
    assert at.title[0].value == "Course concepts, computed"
    # BN tab: m = H·W of BN1's input for one 28×28 image: conv1 5×5/2 → 12×12 = 144 values per channel.
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["m"] == "144"
    # 1×1 reductions: 387,072 vs 163,328 weights (hand formula in tests/test_concepts.py).
    text = " ".join(str(d.value) for d in at.dataframe)
    assert "387,072" in text and "163,328" in text
    at.radio(key="cc_gr_depth").set_value(18).run()
    assert not at.exception, at.exception


def test_page_without_batchnorm_says_so_in_korean(app_factory):
    at = app_factory("course_concepts", sel_model="lenet5", sel_weights="none", lang="ko")
    assert not at.exception, at.exception
    assert any("BatchNorm2d" in i.value for i in at.info)
    assert "강의 개념" in at.title[0].value


@pytest.mark.slow
def test_gradient_tab_computes_plain_and_residual(app_factory):
    at = app_factory("course_concepts", sel_model="mnist_cnn", sel_weights="none")
    at.toggle(key="cc_gr_bn").set_value(False).run()
    at.button(key="cc_gr_run").click().run()
    assert not at.exception, at.exception
    chart = [c for c in at.get("plotly_chart") if "plain18" in c.proto.spec]
    assert chart and "resnet18_a" in chart[0].proto.spec


def test_a_built_network_with_batchnorm1d_draws_every_tab(app_factory):
    """A BatchNorm1d after FC (the Build grammar allows it) is not offered to the BatchNorm demo, which shows
    BatchNorm2d layers; the tabs after it are all drawn (an error there used to end the whole page)."""
    from explorer.models import ModelRef
    from explorer.models.arch import full_spec

    spec = full_spec("in-3x32x32 conv3-8 BN M FC-16 BN FC-10")
    at = app_factory("course_concepts", custom_archs=[spec], sel_model=ModelRef.arch(spec).key)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    from explorer.models import build_model
    import torch.nn as nn

    model = build_model(ModelRef.arch(spec))
    kinds = {name: type(m) for name, m in model.named_modules()}
    assert sorted(kinds.values(), key=str).count(nn.BatchNorm1d) == 1
    assert at.selectbox(key="cc_bn_layer").options == [n for n, k in kinds.items() if k is nn.BatchNorm2d]
    subheaders = [s.value for s in at.subheader]
    assert len(subheaders) >= 8, subheaders  # BN, dropout, gradients, reductions, pooling, residual, LeNet, AlexNet


@pytest.mark.parametrize("model, size", [("tiny_vgg", "2x2"), ("alexnet", "32x32")])
def test_an_input_the_model_cannot_take_is_said_in_the_tabs_that_run_it(app_factory, model, size):
    """It crashed the page; the other tabs (gradients, 1×1 reductions, LeNet...) do not depend on the input."""
    at = app_factory("course_concepts", sel_model=model, sel_weights="none", sel_input=size)
    assert not at.exception, [e.value for e in at.exception]
    assert len([e for e in at.error if "does not fit" in e.value]) == 2  # the BatchNorm and Dropout tabs
    assert len(at.subheader) >= 8
