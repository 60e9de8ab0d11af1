"""Security settings for a classroom server: upload limit, XSRF, no telemetry, no tracebacks to browsers,
no raw HTML, and uploaded file names never used as filesystem paths.

The source checks read the code's syntax tree (not a text grep), so comments and strings do not count
and keyword arguments are found however they are formatted.
"""
from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".streamlit" / "config.toml"


def _ui_sources() -> list[Path]:
    files = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py")), *sorted((ROOT / "ui").glob("*.py"))]
    return [f for f in files if f.is_file()]


def _config() -> dict:
    return tomllib.loads(CONFIG.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------- config
def test_config_exists_next_to_the_entry_script() -> None:
    # Streamlit reads .streamlit/config.toml from the working directory it is started in: the repo root.
    assert CONFIG.is_file()
    assert (ROOT / "app.py").is_file()


def test_upload_size_is_limited() -> None:
    from explorer.imaging import MAX_BYTES

    limit = _config().get("server", {}).get("maxUploadSize")
    assert isinstance(limit, int), "server.maxUploadSize must be set (MB)"
    # Streamlit's default is 200 MB; a classroom server needs far less, and never more than the decoder accepts.
    assert 1 <= limit <= 50
    assert limit * 1024 * 1024 <= MAX_BYTES


def test_xsrf_protection_is_on() -> None:
    assert _config().get("server", {}).get("enableXsrfProtection") is True


def test_usage_statistics_are_off() -> None:
    assert _config().get("browser", {}).get("gatherUsageStats") is False


def test_error_details_are_not_sent_to_browsers() -> None:
    value = _config().get("client", {}).get("showErrorDetails")
    assert value is not None, "client.showErrorDetails must be set: the default sends full tracebacks"
    # "full" (and the legacy true) send tracebacks, "stacktrace" sends the stack: both show code to students.
    assert value in ("none", "type", False), value


def test_every_config_key_is_a_streamlit_option() -> None:
    """A misspelt key (``maxUploadsize``) is silently ignored by Streamlit: check each against its options."""
    from streamlit import config as st_config

    options = set(st_config._config_options_template)  # noqa: SLF001 - the only list of valid names
    for section, values in _config().items():
        for key in values:
            assert f"{section}.{key}" in options, f"unknown Streamlit option {section}.{key}"


def test_streamlit_reads_the_limits_from_this_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Streamlit itself, started in the repo root, ends up with these values."""
    from streamlit import config as st_config

    monkeypatch.chdir(ROOT)
    st_config.get_config_options(force_reparse=True)
    try:
        assert st_config.get_option("server.enableXsrfProtection") is True
        assert st_config.get_option("browser.gatherUsageStats") is False
        assert st_config.get_option("server.maxUploadSize") == _config()["server"]["maxUploadSize"]
        assert st_config.get_option("client.showErrorDetails") in ("none", "type", False)
    finally:
        st_config.get_config_options(force_reparse=True)


# --------------------------------------------------------------------------------------------- source
def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _func_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def test_no_raw_html_in_pages_or_ui() -> None:
    offenders = []
    for path in _ui_sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call in _calls(tree):
            for kw in call.keywords:
                if kw.arg == "unsafe_allow_html" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    offenders.append(f"{path.relative_to(ROOT)}:{call.lineno}")
            # st.html / components.html render raw HTML too. The one exception: ui/present.py's stylesheets
            # (presentation mode, wrapping page links, fitting metrics), module constants no user text can reach.
            constant_css = (path.name == "present.py" and len(call.args) == 1 and isinstance(call.args[0], ast.Name)
                            and call.args[0].id in {"CSS", "WRAPPING_LINKS_CSS", "FITTING_METRICS_CSS"})
            if _func_name(call) == "html" and not constant_css:
                offenders.append(f"{path.relative_to(ROOT)}:{call.lineno} (html)")
    assert not offenders, f"raw HTML rendering: {offenders}"


UPLOAD_WIDGETS = {"file_uploader", "camera_input"}
# Calls that turn their argument into a place on disk (or write there).
PATH_SINKS = {"open", "Path", "PurePath", "PosixPath", "join", "joinpath", "write_bytes", "write_text", "mkdir",
              "save", "extract", "extractall", "copy", "copyfile", "move", "rename", "replace", "NamedTemporaryFile",
              "mkstemp", "mkdtemp", "TemporaryDirectory", "unlink", "rmtree", "makedirs", "torch_save", "to_csv"}


def _upload_variables(tree: ast.AST) -> set[str]:
    """Names bound to an uploaded file: ``x = st.file_uploader(...)``, ``for f in uploads``, ``x = uploads[0]``."""
    names: set[str] = set()
    changed = True
    while changed:
        changed = False
        for node in ast.walk(tree):
            targets: list[ast.AST] = []
            value = None
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
                targets, value = [node.target], node.value
            elif isinstance(node, (ast.For, ast.comprehension)):
                targets, value = [node.target], node.iter
            if value is None:
                continue
            derived = any(isinstance(n, ast.Call) and _func_name(n) in UPLOAD_WIDGETS for n in ast.walk(value)) or any(
                isinstance(n, ast.Name) and n.id in names for n in ast.walk(value))
            if not derived:
                continue
            for target in targets:
                for n in ast.walk(target):
                    if isinstance(n, ast.Name) and n.id not in names:
                        names.add(n.id)
                        changed = True
    return names


def _uses_upload_name(node: ast.AST, uploads: set[str]) -> bool:
    for n in ast.walk(node):
        if isinstance(n, ast.Attribute) and n.attr == "name" and isinstance(n.value, ast.Name) and n.value.id in uploads:
            return True
    return False


def test_upload_file_names_are_never_paths() -> None:
    offenders = []
    for path in _ui_sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        uploads = _upload_variables(tree)
        if not uploads:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _func_name(node) in PATH_SINKS:
                if any(_uses_upload_name(arg, uploads) for arg in [*node.args, *(k.value for k in node.keywords)]):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {_func_name(node)}(… .name …)")
            # Path("dir") / upload.name
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and _uses_upload_name(node.right, uploads):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} … / upload.name")
    assert not offenders, f"uploaded file names used as paths: {offenders}"


def test_the_checker_finds_what_it_should() -> None:
    """The syntax-tree checks themselves flag the patterns they are meant to flag."""
    bad = ast.parse(
        "import streamlit as st\nfrom pathlib import Path\n"
        "files = st.file_uploader('x', accept_multiple_files=True)\n"
        "for f in files:\n    open(f.name, 'wb').write(f.getvalue())\n"
        "up = st.sidebar.file_uploader('y')\nPath('data') / up.name\n"
    )
    uploads = _upload_variables(bad)
    assert {"files", "f", "up"} <= uploads
    sinks = [n for n in ast.walk(bad) if isinstance(n, ast.Call) and _func_name(n) in PATH_SINKS
             and any(_uses_upload_name(a, uploads) for a in n.args)]
    assert len(sinks) == 1
    divisions = [n for n in ast.walk(bad) if isinstance(n, ast.BinOp) and _uses_upload_name(n.right, uploads)]
    assert len(divisions) == 1


def test_every_page_runs_through_the_app_first() -> None:
    """The first statement after a page's imports is ``run_through_app()`` (see docs/CONVENTIONS.md): without
    it a cold server's first deep link runs the page without app.py's sidebar, or shows "Page not found"."""
    for path in sorted((ROOT / "pages").glob("*.py")):
        body = [node for node in ast.parse(path.read_text(encoding="utf-8")).body
                if not isinstance(node, (ast.Import, ast.ImportFrom))
                and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]  # docstring
        first = body[0]
        assert isinstance(first, ast.Expr) and isinstance(first.value, ast.Call), path.name
        assert getattr(first.value.func, "id", None) == "run_through_app", f"{path.name} starts with {ast.dump(first)[:80]}"


def test_download_buttons_do_not_rerun_the_page() -> None:
    """Every ``download_button`` passes ``on_click="ignore"``: a click that reruns the page replaces the other
    buttons' deferred files, and a second download clicked right after failed ("Deferred file not found")."""
    for path in _ui_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "download_button":
                on_click = {k.arg: k.value for k in node.keywords}.get("on_click")
                assert isinstance(on_click, ast.Constant) and on_click.value == "ignore", f"{path.name}:{node.lineno}"
