"""Weights without internet (issue 13): honest status, weights you bring, and `weights fetch/list`.

No test uses the network: ``urllib.request.urlopen`` is replaced by one that fails like a machine without DNS,
and ``TORCH_HOME`` points at a temporary folder, so nothing from the real cache is seen.
"""
from __future__ import annotations

import re
from pathlib import Path
import urllib.request

import torch
import torchvision

from explorer.cli import main as cli_main
from explorer.models import build_model, get_entry, load_model, weights_choices

RAW = re.compile(r"URLError|urlopen|Errno|Traceback")
SMALL_IMAGENET = "squeezenet1_1"  # 1.2 M parameters: small files, quick builds


def _cache_file(name: str, checkpoints) -> Path:
    url = get_entry(name).weights_enum.DEFAULT.url
    return checkpoints / url.rsplit("/", 1)[1]


def test_failed_download_is_one_plain_status_without_raw_exception_text(offline):
    loaded = load_model(SMALL_IMAGENET, device="cpu")
    assert not loaded.pretrained and loaded.categories is None and loaded.weights_kind == "offline"
    assert not RAW.search(loaded.weights_status) and not RAW.search(loaded.weights_detail)
    assert "Name or service not known" in loaded.weights_detail and str(offline) in loaded.weights_detail


def test_cached_weights_file_loads_offline_and_is_reported_pretrained(offline):
    source = build_model(SMALL_IMAGENET)
    with torch.no_grad():
        for p in source.parameters():
            p.mul_(-1.5)  # unlike the seeded random initialisation
    path = _cache_file(SMALL_IMAGENET, offline)
    path.parent.mkdir(parents=True)
    torch.save(source.state_dict(), path)
    loaded = load_model(SMALL_IMAGENET, device="cpu")
    assert loaded.pretrained and loaded.weights_kind == "pretrained" and loaded.trained_on == "imagenet"
    assert loaded.categories[0] == "tench"
    for mine, theirs in zip(loaded.model.state_dict().values(), source.state_dict().values()):
        assert torch.equal(mine, theirs)


def test_weights_fetch_offline_exits_non_zero_with_one_clear_line(offline, capsys):
    code = cli_main(["weights", "fetch", "resnet18", "vgg16"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code != 0
    assert len(err) == 1 and "no internet connection" in err[0] and not RAW.search(err[0]), err
    assert "resnet18-" in err[0]  # names the file to copy instead


def test_weights_list_shows_cached_files_with_sizes(offline, capsys):
    path = _cache_file(SMALL_IMAGENET, offline)
    path.parent.mkdir(parents=True)
    torch.save(build_model(SMALL_IMAGENET).state_dict(), path)
    assert cli_main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.split()[:1] == [SMALL_IMAGENET])
    assert "cached" in line and f"{path.stat().st_size / 2**20:.1f} MB" in line
    assert re.search(r"^\s+tiny_vgg\s+shapes", out, re.M) and re.search(r"^\s+mnist_cnn\s+digits", out, re.M)
    assert cli_main(["weights", "list", "--cached"]) == 0
    cached_only = capsys.readouterr().out
    assert SMALL_IMAGENET in cached_only and "resnet18 " not in cached_only


def test_weights_fetch_uses_the_cache_and_checks_the_hash_in_the_name(offline, tmp_path, monkeypatch, capsys):
    # A "download" served from a local file: the name's hash digits must match the file's SHA-256.
    import hashlib
    import io

    payload = io.BytesIO()
    torch.save(build_model(SMALL_IMAGENET).state_dict(), payload)
    data = payload.getvalue()

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: Response(data))
    code = cli_main(["weights", "fetch", SMALL_IMAGENET])
    captured = capsys.readouterr()
    name = _cache_file(SMALL_IMAGENET, offline).name
    expected_ok = hashlib.sha256(data).hexdigest().startswith(re.search(r"-([a-f0-9]+)\.", name).group(1))
    assert code == (0 if expected_ok else 1)
    assert ("damaged" in captured.err) != expected_ok  # our random file cannot have torchvision's hash
    assert _cache_file(SMALL_IMAGENET, offline).is_file() == expected_ok  # a damaged download is not kept


def test_torchvision_checkpoint_files_load_as_user_weights(tmp_path):
    """torchvision's own files carry GoogLeNet's auxiliary heads and DenseNet's old key names."""
    googlenet = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    path = tmp_path / "googlenet-1378be20.pth"
    torch.save(googlenet.state_dict(), path)
    loaded = load_model("googlenet", weights=str(path), device="cpu")
    assert loaded.weights_kind == "checkpoint" and loaded.pretrained and loaded.categories[0] == "tench"
    assert torch.equal(loaded.model.conv1.conv.weight, googlenet.conv1.conv.weight)

    dense = torchvision.models.densenet121(weights=None)
    legacy = {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))(\d)\.", r"\1.\2.", k): v for k, v in dense.state_dict().items()}
    assert any(".norm.1." in k for k in legacy)  # the layout of densenet121-a639ec97.pth
    path = tmp_path / "densenet121-a639ec97.pth"
    torch.save(legacy, path)
    loaded = load_model("densenet121", weights=str(path), device="cpu")
    assert torch.equal(loaded.model.features.denseblock1.denselayer1.norm1.weight,
                       dense.features.denseblock1.denselayer1.norm1.weight)


def test_weights_choices_offer_only_what_exists():
    assert weights_choices("tiny_vgg") == ("builtin",) and weights_choices("mnist_cnn") == ("builtin",)
    assert weights_choices("resnet18") == ("pretrained",)
    assert weights_choices("plain18") == () and weights_choices("arch:conv3-8 M FC-10") == ()
