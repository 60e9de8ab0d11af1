"""Recorded activations kept by reference (no copy) where the forward pass never rewrites them: the values must
be exactly what plain forward hooks that clone every output see, on the first pass (learning) and after it."""
import pytest
import torch
import torch.nn as nn
import torchvision

from explorer.analysis import hooks
from hook_reference import plain_outputs


class RewritesOnlySometimes(nn.Module):
    """A path that depends on the data: the in-place op runs only for a positive mean."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        y = self.conv(x)
        if float(x.mean()) > 0:
            y.mul_(-1)
        return self.head(y.mean((2, 3)))


MODELS = [
    ("resnet18", lambda: torchvision.models.resnet18(), 64),
    ("mobilenet_v2", lambda: torchvision.models.mobilenet_v2(), 64),  # ReLU6(inplace) everywhere
    ("densenet121", lambda: torchvision.models.densenet121(), 64),  # concatenations, functional relu
    ("shufflenet_v2_x0_5", lambda: torchvision.models.shufflenet_v2_x0_5(), 64),  # chunk views
    ("squeezenet1_1", lambda: torchvision.models.squeezenet1_1(), 64),
    ("efficientnet_b0", lambda: torchvision.models.efficientnet_b0(), 64),  # SiLU(inplace), stochastic depth
]


@pytest.mark.parametrize("name,build,side", MODELS, ids=[m[0] for m in MODELS])
def test_references_hold_the_values_plain_hooks_see(name, build, side):
    torch.manual_seed(0)
    model = build().eval()
    x = torch.randn(1, 3, side, side)
    expected = plain_outputs(model, x)
    for attempt in ("learning", "with the learnt plan"):
        result = hooks.run_pass(model, x.clone(), record=None)
        compared = 0
        for call, tensor in result.tensors.items():
            if call in expected:
                torch.testing.assert_close(tensor, expected[call], rtol=0, atol=0, msg=f"{attempt}: {call}")
                compared += 1
        assert compared >= 0.8 * len(expected), (attempt, compared, len(expected))


def test_a_reference_rewritten_by_a_data_dependent_path_is_recomputed():
    torch.manual_seed(0)
    model = RewritesOnlySometimes().eval()
    negative = -torch.ones(1, 3, 8, 8)  # no in-place op: the plan learns that nothing needs a copy
    hooks.run_pass(model, negative, record=None)
    positive = torch.ones(1, 3, 8, 8)
    result = hooks.run_pass(model, positive, record=None)  # the conv output is rewritten after it was kept
    with torch.no_grad():
        conv_out = model.conv(positive)
    torch.testing.assert_close(result.tensors["conv"], conv_out)


class ConstantBeside(nn.Module):
    """A leaf that returns a learnt constant: arithmetic on it alone is no layer; arithmetic with the input is."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.table = nn.Embedding(1, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        bias = self.table(torch.zeros(1, dtype=torch.long)) * 2  # constant: not computed from x
        y = self.conv(x) + bias[:, :, None, None]
        return self.head(torch.relu(y).mean((2, 3)))


def test_only_calls_on_tensors_computed_from_the_input_are_layers():
    model = ConstantBeside().eval()
    calls = [c.name for c in hooks.run_pass(model, torch.randn(1, 3, 8, 8), record=[], list_calls=True).calls
             if c.is_function]
    assert "add" in calls and "relu" in calls
    assert "mul" not in calls, calls


# --- the recording pass's forward wrappers (hooks.run_pass patches ``forward`` for one pass) ------------------------

class CallsForwardDirectly(nn.Module):
    """A parent that calls a child's ``forward`` itself: no hook fires for it, so it is no call of the child."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        y = self.conv(x)
        y = self.conv.forward(y[:, :3])  # not a module call
        y = self.conv(y[:, :3])
        return self.head(y.mean((2, 3)))


class FailsHalfway(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(5, 2)  # wrong size: the forward pass raises after the conv

    def forward(self, x):
        return self.head(self.conv(x).mean((2, 3)))


def _leftovers(model):
    return [name for name, module in model.named_modules() if "forward" in vars(module)]


def test_calls_numbered_as_plain_hooks_number_them_and_nothing_left_on_the_model():
    model = CallsForwardDirectly().eval()
    x = torch.randn(1, 3, 8, 8)
    expected = plain_outputs(model, x)
    result = hooks.run_pass(model, x, record=None)
    assert sorted(k for k in expected if k.startswith("conv")) == ["conv", "conv#2"]
    assert "conv#3" not in result.tensors  # the direct call is the parent's own conv2d op, as without wrappers
    for name in ("conv", "conv#2"):
        torch.testing.assert_close(result.tensors[name], expected[name], rtol=0, atol=0)
    assert not _leftovers(model)


def test_a_failing_pass_leaves_no_wrapper_and_the_model_still_runs():
    model = FailsHalfway().eval()
    with pytest.raises(RuntimeError):
        hooks.run_pass(model, torch.randn(1, 3, 8, 8), record=None)
    assert not _leftovers(model)
    model.head = nn.Linear(4, 2)
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 2)


def test_hooks_of_the_users_own_and_global_hooks_keep_their_meaning():
    """A module with its own forward hook (here doubling its output) is recorded after that hook, as a hook
    registered after it would see; a global module hook (PyTorch's slow call path) does not hide any call."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    user = model.layer1[0].conv1.register_forward_hook(lambda _m, _i, out: out * 2)
    seen = []
    global_hook = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: seen.append(1))
    try:
        x = torch.randn(1, 3, 64, 64)
        expected = plain_outputs(model, x)  # its hooks are registered after the user's: they see the doubled output
        result = hooks.run_pass(model, x, record=None)
    finally:
        user.remove()
        global_hook.remove()
    assert seen
    modules = [name for name, _ in model.named_modules() if name]
    assert all(name in result.tensors for name in modules)
    for name in modules:
        torch.testing.assert_close(result.tensors[name], expected[name], rtol=0, atol=0, msg=name)
    assert not _leftovers(model)
