"""Review 14, findings 1, 2, 3 and 5: pretrained and built-in weights, and what the page says when they fail.

No test uses the network: ``urllib.request.urlopen`` is replaced (or answers from a local http.server on 127.0.0.1),
and ``TORCH_HOME`` is a temporary folder. The facts checked are independent of the code under test: the SHA-256 of
bytes the test wrote (``hashlib``), the exception the test injected, the files present in the folder, the seeded
random weights from ``build_model``.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import shutil
import socket
import threading
import types
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from explorer.core import translate
from explorer.models import build_model, get_entry, load_model

SMALL_IMAGENET = "squeezenet1_1"  # 1.2 M parameters: small files, quick builds
PORTAL = b"<html><body>Please log in to the campus Wi-Fi</body></html>"


class Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _file_name(name: str) -> str:
    return get_entry(name).weights_enum.DEFAULT.url.rsplit("/", 1)[1]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def torch_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def _network(monkeypatch, answer):
    """urlopen replaced by ``answer(url)``; returns the list of URLs asked for."""
    calls: list[str] = []

    def urlopen(url, timeout=None):
        calls.append(url)
        return answer(url)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return calls


def _no_dns(url):
    raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))


# --- finding 2: a wrong download is checked against the hash in the name and not kept -----------------------------

def test_a_login_page_sent_as_the_weights_is_not_kept_and_the_next_load_downloads_again(monkeypatch, torch_home):
    calls = _network(monkeypatch, lambda url: Response(PORTAL))
    loaded = load_model(SMALL_IMAGENET, device="cpu")
    assert loaded.weights_kind == "bad_download" and not loaded.pretrained and loaded.categories is None
    assert _sha(PORTAL)[:8] in loaded.weights_detail  # the page's own SHA-256, computed here independently
    assert "web page" in loaded.weights_detail and "nothing was kept" in loaded.weights_detail
    assert sorted(p.name for p in torch_home.iterdir()) == []  # neither the file nor a .part remnant
    load_model(SMALL_IMAGENET, device="cpu")
    assert len(calls) == 2  # no wrong file short-circuits the next load: it asks the network again


@pytest.fixture
def local_server(tmp_path):
    """An http.server on 127.0.0.1 serving ``tmp_path/site``; yields (folder, base URL)."""
    site = tmp_path / "site"
    site.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_download_is_kept_only_when_its_sha256_matches_the_name(local_server, torch_home):
    from explorer.models.hub import WrongDownloadError, download_to_cache

    site, base = local_server
    payload = b"pretend weights " * 1000
    good = f"toynet-{_sha(payload)[:8]}.pth"
    bad = f"toynet-{_sha(b'something else')[:8]}.pth"
    for name in (good, bad):
        (site / name).write_bytes(payload)
    path = download_to_cache(types.SimpleNamespace(url=f"{base}/{good}"))
    assert path == torch_home / good and path.read_bytes() == payload
    with pytest.raises(WrongDownloadError) as caught:
        download_to_cache(types.SimpleNamespace(url=f"{base}/{bad}"))
    assert _sha(payload)[:8] in str(caught.value)
    assert sorted(p.name for p in torch_home.iterdir()) == [good]


def test_a_damaged_file_already_in_the_cache_is_said_and_deleted_not_used_for_good(monkeypatch, torch_home):
    calls = _network(monkeypatch, _no_dns)
    torch_home.mkdir(parents=True)
    path = torch_home / _file_name(SMALL_IMAGENET)
    path.write_bytes(PORTAL)  # kept by an earlier version from a captive portal
    loaded = load_model(SMALL_IMAGENET, device="cpu")
    assert loaded.weights_kind == "fallback" and not loaded.pretrained
    assert _sha(PORTAL)[:8] in loaded.weights_detail and "deleted" in loaded.weights_detail
    assert not path.exists() and calls == []
    load_model(SMALL_IMAGENET, device="cpu")
    assert len(calls) == 1  # the next load tries to download it again


def test_a_hand_saved_file_that_loads_says_it_is_not_the_published_one(monkeypatch, torch_home):
    _network(monkeypatch, _no_dns)
    torch_home.mkdir(parents=True)
    path = torch_home / _file_name(SMALL_IMAGENET)
    torch.save(build_model(SMALL_IMAGENET).state_dict(), path)
    loaded = load_model(SMALL_IMAGENET, device="cpu")
    assert loaded.weights_kind == "pretrained" and path.exists()
    assert _sha(path.read_bytes())[:8] in loaded.weights_detail and "not the file as published" in loaded.weights_detail


# --- finding 3: the true reason ------------------------------------------------------------------------------------

def test_an_unwritable_cache_folder_is_not_reported_as_no_internet(monkeypatch, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TORCH_HOME", str(blocker / "torch"))  # mkdir fails here, whoever runs the tests (root too)
    calls = _network(monkeypatch, lambda url: Response(b"the internet works"))
    loaded = load_model(SMALL_IMAGENET, device="cpu")
    assert calls == []  # the network was never tried ...
    assert loaded.weights_kind == "cache_unwritable"  # ... so it is not "offline"
    assert str(blocker / "torch" / "hub" / "checkpoints") in loaded.weights_detail
    for lang in ("en", "ko"):
        banner = translate(f"weights.{loaded.weights_kind}", lang)
        assert banner != translate("weights.offline", lang) and banner.split(":")[0] not in translate("weights.offline", lang)


@pytest.mark.parametrize("code, reason", [(403, "Forbidden"), (404, "Not Found")])
def test_an_http_refusal_is_not_told_to_delete_a_file_that_does_not_exist(monkeypatch, torch_home, code, reason):
    def refuse(url):
        raise urllib.error.HTTPError(url, code, reason, {}, None)

    _network(monkeypatch, refuse)
    loaded = load_model(SMALL_IMAGENET, device="cpu")
    assert loaded.weights_kind == "refused" and f"HTTP {code} {reason}" in loaded.weights_detail
    assert not torch_home.exists() or list(torch_home.iterdir()) == []
    help_en = translate("weights.refused_help", "en", model=SMALL_IMAGENET, detail=loaded.weights_detail)
    assert "Delete the file" not in help_en and "proxy" in help_en


def test_a_404_from_a_real_local_server_is_refused_not_offline(local_server, torch_home):
    from explorer.models.hub import download_failure, download_to_cache

    _, base = local_server
    member = types.SimpleNamespace(url=f"{base}/missing-abcdef12.pth")
    with pytest.raises(urllib.error.HTTPError) as caught:
        download_to_cache(member)
    kind, detail = download_failure(caught.value, member)
    assert kind == "refused" and "HTTP 404" in detail


# --- finding 5: damaged built-in weights ---------------------------------------------------------------------------

@pytest.fixture
def damaged_builtin(monkeypatch, tmp_path):
    import explorer.models.builtin as builtin

    folder = tmp_path / "weights"
    shutil.copytree(builtin.WEIGHTS_DIR, folder)
    (folder / "tiny_vgg.pt").write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    monkeypatch.setattr(builtin, "WEIGHTS_DIR", folder)
    return folder / "tiny_vgg.pt"


def test_damaged_builtin_weights_fall_back_to_the_seeded_random_network(damaged_builtin):
    loaded = load_model("tiny_vgg", device="cpu")
    assert loaded.weights_kind == "builtin_damaged" and not loaded.pretrained and loaded.categories is None
    assert str(damaged_builtin) in loaded.weights_detail and "Git LFS pointer" in loaded.weights_detail
    assert "torch.save" not in loaded.weights_detail
    reference = build_model("tiny_vgg").state_dict()
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, reference[key]), key


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_damaged_builtin_weights_keep_the_first_page_with_a_translated_note(app_factory, damaged_builtin, lang):
    import streamlit as st

    st.cache_resource.clear()
    at = app_factory("home", lang=lang)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    infos = [i.value for i in at.info]
    assert translate("weights.builtin_damaged", lang) in infos
    text = " ".join(infos + [c.value for c in at.caption])
    assert "torch.save" not in text and str(damaged_builtin) in text
    st.cache_resource.clear()  # the next tests get the real built-in weights back


# --- finding 1: a fallback is not kept by the whole server for good ------------------------------------------------

def test_a_fallback_is_retried_after_a_minute_and_at_once_when_the_file_arrives(app_factory, monkeypatch, torch_home):
    import streamlit as st
    import ui.common

    now = [1000.0]
    monkeypatch.setattr(ui.common, "_clock", lambda: now[0], raising=False)
    calls = _network(monkeypatch, _no_dns)
    st.cache_resource.clear()
    offline = translate("weights.offline", "en")

    def session():
        at = app_factory("home", sel_model=SMALL_IMAGENET, sel_sample="grace_hopper")
        assert not at.exception, at.exception
        return at

    at = session()
    assert offline in [i.value for i in at.info] and len(calls) == 1
    assert not any(" is not in " in c.value for c in at.caption)  # said when it was true: "was not in"
    session()
    assert len(calls) == 1  # a new session soon after: the fallback is shared, the network not asked again
    now[0] += getattr(ui.common, "FALLBACK_RETRY_S", 60.0) + 1
    at = session()
    assert len(calls) == 2 and offline in [i.value for i in at.info]  # a minute later: tried again, once
    session()
    assert len(calls) == 2

    # The teacher copies a weights file into the cache: the next session uses it, with no restart and no wait.
    torch_home.mkdir(parents=True, exist_ok=True)
    source = build_model(SMALL_IMAGENET)
    with torch.no_grad():
        for p in source.parameters():
            p.mul_(-1.5)
    torch.save(source.state_dict(), torch_home / _file_name(SMALL_IMAGENET))
    at = session()
    assert offline not in [i.value for i in at.info]
    loaded = ui.common.cached_model(SMALL_IMAGENET, "pretrained", "cpu", None, version=0.0)
    assert loaded.weights_kind == "pretrained"
    assert torch.equal(next(loaded.model.parameters()), next(source.parameters()))
    st.cache_resource.clear()
