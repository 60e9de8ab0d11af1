"""The benchmark prints each target beside its figure and says MISSED where a figure misses it."""
from explorer.devtools import bench
from explorer.devtools.appserver import AppStart


def _report(forward_ms: float, analysis_ms: float, device: str = "cpu") -> bench.ModelReport:
    report = bench.ModelReport("net", device, "layer")
    for key, ms in (("forward", forward_ms), ("fwd_bwd_layer", forward_ms * 1.05), ("gradcam", forward_ms * 1.1),
                    ("analysis", analysis_ms)):
        report.timings[key] = bench.Timing(key, ms, [ms])
    report.rounds = [{k: t.median_ms for k, t in report.timings.items()}]
    report.timings["interaction"] = bench.Timing("interaction", 60.0, [60.0])
    return report


def _row(table: str, label: str) -> str:
    return next(line for line in table.splitlines() if line.startswith(f"| {label}"))


def test_the_analysis_is_judged_against_a_bare_forward_pass():
    met = bench.markdown_table([_report(100.0, 139.0)])
    missed = bench.markdown_table([_report(100.0, 141.0)])
    assert "1.39× (ok)" in _row(met, "full analysis") and "≤ 1.4× bare forward" in _row(met, "full analysis")
    assert "1.41× (MISSED)" in _row(missed, "full analysis")
    assert "(MISSED)" in _row(met, "cached interaction")  # 60 ms > 50 ms


def test_cuda_reports_use_the_cuda_target():
    table = bench.markdown_table([_report(10.0, 14.5, device="cuda:0")])
    assert "1.45× (ok)" in _row(table, "full analysis") and "≤ 1.5× bare forward" in _row(table, "full analysis")


def test_app_start_and_cli_lines_name_their_targets():
    text = bench.app_start_text(AppStart(health_s=0.6, title_s=1.5, complete_s=2.4, warm_session_s=0.4))
    assert "first page complete 2.4 s (target ≤ 2 s: MISSED)" in text
    assert "warm server 0.4 s (target ≤ 1 s: ok)" in text
    cli = bench.cli_text({"models": 0.2, "--help": 1.2})
    assert "`models` 0.20 s (ok)" in cli and "`--help` 1.20 s (MISSED)" in cli


def test_app_start_line_sets_each_figure_beside_its_floor():
    start = AppStart(health_s=0.5, title_s=3.0, complete_s=3.0, warm_session_s=1.1)
    floor = AppStart(health_s=0.5, title_s=2.4, complete_s=2.4, warm_session_s=1.0)
    text = bench.app_start_text(start, floor)
    assert "3.0 s (target ≤ 2 s: MISSED; floor 2.4 s, 1.25× it)" in text  # 3.0 / 2.4
    assert "1.1 s (target ≤ 1 s: MISSED; floor 1.0 s, 1.10× it)" in text
    assert "bare Streamlit page that imports torch" in text


def test_app_start_reports_a_visitor_after_the_warm_up_only_when_measured():
    start = AppStart(health_s=0.5, title_s=3.5, complete_s=3.5, warm_session_s=1.0)
    assert "after the server's warm-up" not in bench.app_start_text(start)
    start.warm_up_s, start.warmed_first_s = 2.64, 1.04
    text = bench.app_start_text(start)
    assert "its log says it is done at 2.6 s): first page complete 1.0 s" in text


def test_app_start_reports_a_restart_beside_the_target_and_floor_only_when_measured():
    start = AppStart(health_s=0.5, title_s=3.5, complete_s=3.5, warm_session_s=1.0)
    floor = AppStart(health_s=0.5, title_s=2.4, complete_s=2.4, warm_session_s=1.0)
    assert "A restart" not in bench.app_start_text(start, floor)
    start.restart_s = 2.52
    text = bench.app_start_text(start, floor)
    assert "A restart" in text and "2.5 s (target ≤ 2 s: MISSED; floor 2.4 s, 1.05× it)" in text  # 2.52 / 2.4


def test_the_floor_script_is_a_bare_page_that_imports_torch():
    import ast

    from explorer.devtools.appserver import FLOOR_SCRIPT

    tree = ast.parse(FLOOR_SCRIPT)
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert imported == {"streamlit", "torch"}


def test_a_server_in_a_new_home_folder_keeps_finding_this_user_s_caches(monkeypatch, tmp_path):
    """The bench's first start gets an empty home folder for Streamlit's disk cache only: downloaded weights, data
    sets and matplotlib's settings stay where torch, the app and matplotlib look for them in the real one."""
    from explorer.devtools.appserver import kept_caches_env

    for name in ("TORCH_HOME", "EXPLORER_DATA_DIR", "XDG_CACHE_HOME", "MPLCONFIGDIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    env = kept_caches_env()
    assert env["TORCH_HOME"] == str(tmp_path / ".cache" / "torch")  # torch.hub's own default under the real home
    assert env["EXPLORER_DATA_DIR"] == str(tmp_path / ".cache" / "cnn-explorer" / "data")
    monkeypatch.setenv("TORCH_HOME", "/elsewhere/torch")
    assert kept_caches_env()["TORCH_HOME"] == "/elsewhere/torch"
