"""The command line, run as a user would (a subprocess)."""
import csv
import pytest
import io
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "explorer", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_models_lists_one_per_line():
    out = run_cli("models")
    assert out.returncode == 0
    names = out.stdout.split()
    assert "mnist_cnn" in names and "resnet18" in names and "vit_b_16" not in names


def test_summary_mnist_csv():
    out = run_cli("summary", "mnist_cnn", "--input", "1x28x28", "--csv")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert list(rows[0]) == ["layer", "type", "depth", "input_shape", "output_shape", "kernel", "stride", "padding",
                             "dilation", "params", "trainable_params", "mult_adds"]
    assert sum(int(r["trainable_params"]) for r in rows) == 2762
    shapes = {r["layer"]: r["output_shape"] for r in rows}
    assert (shapes["conv1"], shapes["conv2"], shapes["conv3"]) == ("8x12x12", "8x4x4", "8x2x2")
    relu = next(r for r in rows if r["layer"] == "relu1")
    assert relu["kernel"] == "" and relu["stride"] == ""


def test_summary_vgg16_total():
    out = run_cli("summary", "vgg16")
    assert out.returncode == 0, out.stderr
    assert "params 138,357,544" in out.stdout


def test_errors_are_messages_not_tracebacks():
    out = run_cli("summary", "no_such_model")
    assert out.returncode == 2 and "unknown model" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("summary", "alexnet", "--input", "3x30x30")
    assert out.returncode == 2 and "too small" in out.stderr or "does not fit" in out.stderr
    out = run_cli("summary", "alexnet", "--input", "banana")
    assert out.returncode != 0 and "Traceback" not in out.stderr


def test_help_and_argument_errors_answer_without_importing_torch():
    """`--help` and a missing MODEL are answered by argparse before any heavy import (torch takes seconds)."""
    import subprocess
    import sys

    code = ("import sys\nfrom explorer.cli import main\n"
            "for argv in (['--help'], ['summary'], ['rf', '--weights', 'none'], ['gradcam']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules, 'pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "False False", done.stdout + done.stderr
    assert "one of the arguments model --arch is required" in done.stderr


def test_compare_model_names_are_not_read_as_model_files(monkeypatch, capsys):
    """`compare` has its own MODELS argument; only the top-level --models names Python files."""
    import os

    from explorer.cli import main

    monkeypatch.setenv("EXPLORER_MODELS", "")
    assert main(["compare", "mnist_cnn", "lenet5", "--csv", "--no-rf"]) == 0
    assert os.environ["EXPLORER_MODELS"] == ""
    assert "mnist_cnn" in capsys.readouterr().out


def test_models_and_an_unknown_name_answer_without_importing_torch():
    """`models` prints the registry's names and an unknown MODEL is refused from the light index, torch unloaded."""
    import subprocess
    import sys

    from explorer.models.names import quick_model_names

    if quick_model_names() is None:
        pytest.skip("the registry differs from the index here (timm, entry points or $EXPLORER_MODELS present)")
    code = ("import sys\nfrom explorer.cli import main\n"
            "print('rc', main(['models']))\n"
            "print('rc', main(['summary', 'no_such_net']))\n"
            "print('torch' in sys.modules, 'torchvision' in sys.modules)")
    env = {k: v for k, v in __import__("os").environ.items() if k != "EXPLORER_MODELS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "False False", done.stdout + done.stderr
    assert "rc 0" in lines and "rc 2" in lines
    assert "unknown model 'no_such_net'" in done.stderr
    assert {"resnet18", "tiny_vgg", "vgg_e", "googlenet_paper"} <= set(lines)


def test_the_name_index_is_the_live_registry():
    """The index the CLI answers from equals the registry built from torchvision (project and torchvision names,
    in list_models' order); a stale index (another torchvision) or an operator's models make it step aside."""
    import json

    from explorer.models import get_entry, list_models
    from explorer.models.names import INDEX_FILE, quick_model_names, torchvision_version

    live = [n for n in list_models() if get_entry(n).source not in ("timm", "user")]
    index = json.loads(INDEX_FILE.read_text())
    assert index["names"] == live, "run `python scripts/model_index.py`"
    assert index["torchvision"] == torchvision_version()


def test_the_name_index_steps_aside_when_it_is_not_the_registry(tmp_path, monkeypatch):
    import json

    from explorer.models.names import quick_model_names, torchvision_version

    monkeypatch.delenv("EXPLORER_MODELS", raising=False)
    stale = tmp_path / "names.json"
    stale.write_text(json.dumps({"torchvision": "0.0.1", "names": ["resnet18"]}))
    assert quick_model_names(stale) is None
    fresh = tmp_path / "fresh.json"
    fresh.write_text(json.dumps({"torchvision": torchvision_version(), "names": ["resnet18"]}))
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)  # as on a machine without timm
    assert quick_model_names(fresh) == ["resnet18"]
    monkeypatch.setenv("EXPLORER_MODELS", str(tmp_path / "mine.py"))
    assert quick_model_names(fresh) is None
    assert quick_model_names(tmp_path / "missing.json") is None
