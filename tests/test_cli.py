"""The command line, run as a user would (a subprocess)."""
import csv
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
