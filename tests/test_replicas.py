"""Two app replicas behind HAProxy (deploy/haproxy.cfg): cookie affinity, websockets, failover, shared runs.

Everything on 127.0.0.1: two ``streamlit run app.py`` servers sharing one runs folder, HAProxy with the
deployed config (only its server lines swapped for loopback ones), and simulated students that speak
Streamlit's websocket protocol (deploy/loadclient.py). Installs nothing: skipped when ``haproxy`` is absent.
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from deploy.loadclient import (FLEX_MODEL, REPO_ROOT, Element, RunResult, SessionLog, StreamlitClient, Student,
                               check_own_answer, connect_student, free_port, haproxy_config, image_streamlit_env,
                               record_reference,
                               run_steps, start_haproxy, start_replica, stop_process, table_rows, wait_healthy)

HAPROXY = shutil.which("haproxy")
needs_haproxy = pytest.mark.skipif(HAPROXY is None, reason="the haproxy binary is not installed "
                                   "(apt-get install -y haproxy); this test starts nothing without it")

STUDENTS = 60  # at once, through the proxy
LATE_STUDENTS = 10  # arrive after one replica died
RUN_NAME = "shared-run"


def test_haproxy_config_keeps_the_deployed_policy() -> None:
    """The loopback rendering keeps deploy/haproxy.cfg's affinity and health lines and drops only DNS."""
    text = haproxy_config([("app1", 8501), ("app2", 8502)], 8080)
    assert re.search(r"^\s*cookie SERVERID insert indirect nocache\b", text, re.M)
    assert "option httpchk GET /_stcore/health" in text and "option redispatch" in text
    assert "timeout tunnel" in text  # websockets stay open between clicks
    servers = re.findall(r"^\s*server (\S+) (\S+) check\b", text, re.M)
    assert servers == [("app1", "127.0.0.1:8501"), ("app2", "127.0.0.1:8502")]
    assert not re.search(r"^\s*(resolvers|server-template|nameserver)\b", text, re.M) and "${" not in text
    assert "bind \"127.0.0.1:8080\"" in text


def test_image_settings_are_read_from_the_dockerfile() -> None:
    """The loopback replicas take the image's Streamlit settings; without the post-run gc.collect a page rerun
    costs ~4x less CPU (docs/SERVING.md)."""
    assert image_streamlit_env()["STREAMLIT_RUNNER_POST_SCRIPT_GC"] == "false"
    assert image_streamlit_env()["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] == "false"


@needs_haproxy
def test_haproxy_accepts_both_configs(tmp_path: Path) -> None:
    """``haproxy -c``: the compose file as deployed (environment filled in) and the loopback rendering."""
    env = {**os.environ, "HAPROXY_BIND": ":8080", "COOKIE_KEY": "k", "APP_SERVICE": "app", "APP_SLOTS": "4"}
    deployed = subprocess.run([HAPROXY, "-c", "-f", str(REPO_ROOT / "deploy" / "haproxy.cfg")], env=env,
                              capture_output=True, text=True, timeout=30)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    cfg = tmp_path / "loopback.cfg"
    cfg.write_text(haproxy_config([("app1", 8501), ("app2", 8502)], 8080))
    rendered = subprocess.run([HAPROXY, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr


def _fake_result(code: str = "", rows: list[tuple[str, str, str, str]] | None = None) -> RunResult:
    """A script run's answer built by hand: a code line and/or a layer table (as Arrow IPC bytes)."""
    import pandas as pd
    import pyarrow as pa
    from streamlit.proto.Element_pb2 import Element as ElementProto

    result = RunResult(seconds=0.1, status="FINISHED_SUCCESSFULLY")
    if code:
        proto = ElementProto()
        proto.code.code_text = code
        result.elements.append(Element((0, 0), "code", proto.code))
    if rows is not None:
        frame = pd.DataFrame(rows, columns=["layer", "type", "input_shape", "output_shape"])
        sink = pa.BufferOutputStream()
        table = pa.Table.from_pandas(frame)
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        proto = ElementProto()
        proto.dataframe.arrow_data.data = sink.getvalue().to_pybytes()
        result.elements.append(Element((0, 1), "dataframe", proto.dataframe))
    return result


def test_a_neighbours_answer_is_not_accepted() -> None:
    """The per-session checks accept a student's own answer and reject its neighbours' (the formula line of
    another N or P, another model's table, another input size)."""
    me, other = Student.make(5), Student.make(6)
    assert (me.arith_n, me.arith_p) != (other.arith_n, other.arith_p) and me.model != other.model
    assert Student.make(5 + 56).arith_p != me.arith_p  # same N, other padding: still told apart

    def line(s: Student) -> str:
        out = (s.arith_n + 2 * s.arith_p - 3) // 2 + 1  # written out here, not through conv_output
        return (f"(N − F + 2P) / S + 1\nnn.Conv2d(C_in, C_out, kernel_size=3, stride=2, padding={s.arith_p}, "
                f"dilation=1)  # {s.arith_n}×{s.arith_n} → {out}×{out}")

    assert check_own_answer("arith", me, _fake_result(line(me)), {}) == ""
    assert check_own_answer("arith", me, _fake_result(line(other)), {}) != ""
    assert check_own_answer("arith", Student.make(5 + 56), _fake_result(line(me)), {}) != ""

    reference = {me.model: [("conv1", "Conv2d", "1x28x28", "8x12x12")],
                 other.model: [("C1", "Conv2d", "1x32x32", "6x28x28")],
                 FLEX_MODEL: [("conv1", "Conv2d", "3x224x224", "64x112x112"), ("fc", "Linear", "512", "1000")]}
    assert check_own_answer("model", me, _fake_result(rows=reference[me.model]), reference) == ""
    assert check_own_answer("model", me, _fake_result(rows=reference[other.model]), reference) != ""
    mine = [("conv1", "Conv2d", f"3x{me.height}x{me.width}", "64x9x9"), ("fc", "Linear", "512", "1000")]
    theirs = [("conv1", "Conv2d", f"3x{other.height}x{other.width}", "64x9x9"), ("fc", "Linear", "512", "1000")]
    assert check_own_answer("size", me, _fake_result(rows=mine), reference) == ""
    assert check_own_answer("size", me, _fake_result(rows=theirs), reference) != ""
    failed = _fake_result(line(me))
    failed.status = ""
    assert check_own_answer("arith", me, failed, {}) != ""  # a time-out is never a correct answer


# ------------------------------------------------------------------------------------ the real thing
async def _run_listed_and_loadable(url: str) -> str:
    """On one replica (directly): the sidebar lists the shared run, and its Layer-shapes table draws.
    Returns "" or what is wrong."""
    client = StreamlitClient(url)
    try:
        await client.open("conv_arithmetic")
        result = await client.rerun("conv_arithmetic")
        widget = result.widget("sel_model")
        labels = [o for o in (widget.options if widget is not None else []) if RUN_NAME in o]
        if len(labels) != 1:
            return f"{url}: the sidebar lists {len(labels)} options naming {RUN_NAME}"
        client.set_widget("sel_model", labels[0], "string_value")
        result = await client.rerun("architecture")
        rows = table_rows(result)
        if not result.ok or not rows or not rows[0][2].endswith("x28x28"):
            return f"{url}: the run's table did not draw ({result.status}, {result.exceptions()[:1]}, {rows[:1]})"
        return ""
    finally:
        await client.close()


Plan = list[tuple[Student, StreamlitClient, tuple[str, ...], str]]


async def _phase(plan: Plan, reference: dict) -> list[SessionLog]:
    """Every student of ``plan`` at once: (student, client, steps, connect) where connect is "page" (GET the
    page, then the websocket), "ws" (websocket only, as Streamlit's frontend reconnects) or "" (connected)."""

    async def one(student: Student, client: StreamlitClient, steps: tuple[str, ...], connect: str) -> SessionLog:
        log = SessionLog(student.index)
        try:
            if connect:
                await connect_student(client, log, page_load=(connect == "page"))
            await run_steps(client, student, log, steps, reference)
        except Exception as exc:  # reported by the assertions, with the student's number
            log.errors.append(f"{type(exc).__name__}: {exc}")
        return log

    return list(await asyncio.gather(*(one(*item) for item in plan)))


def _problems(logs: list[SessionLog]) -> list[str]:
    return [f"student {log.student}: {log.errors[:2]}" for log in logs if not log.correct]


async def _scenario(proxy_url: str, replicas: list) -> None:
    app1, app2 = replicas
    # One session alone per replica: warms it up (torch import) and records each model's layer table.
    reference = await record_reference(app1.url)
    assert await record_reference(app2.url) == reference

    # The run written by the CLI into the shared folder is listed and loads on both replicas.
    for replica in replicas:
        assert await _run_listed_and_loadable(replica.url) == ""

    # Phase 1: 60 students at once through the proxy; every 6th also sets its own input size on plain18.
    students = [Student.make(i) for i in range(STUDENTS)]
    clients = [StreamlitClient(proxy_url) for _ in students]
    steps = [("open", "arith", "model") + (("flex", "size") if i % 6 == 0 else ()) for i in range(STUDENTS)]
    logs = await _phase(list(zip(students, clients, steps, ["page"] * STUDENTS)), reference)
    assert not _problems(logs), _problems(logs)[:5]
    for log in logs:
        # The page GET, the websocket and the CSV downloads of a session: one replica, named by one cookie.
        assert len(set(log.served_by)) == 1 and log.served_by[0] in ("app1", "app2"), log
        assert len(set(log.affinity)) == 1 and log.affinity[0], log
    cookie_of = {log.served_by[0]: log.affinity[0] for log in logs}
    assert {(log.served_by[0], log.affinity[0]) for log in logs} == set(cookie_of.items())  # one cookie per replica
    home = {log.student: log.served_by[0] for log in logs}
    counts = Counter(home.values())
    assert set(counts) == {"app1", "app2"} and min(counts.values()) >= STUDENTS // 6, counts
    session_of = {log.student: log.session_ids[0] for log in logs}
    assert len(set(session_of.values())) == STUDENTS

    # Phase 2: everyone clicks again (a new N) and app2 is killed while those reruns run.
    rerun = asyncio.ensure_future(_phase([(s, c, ("arith2",), "") for s, c in zip(students, clients)], reference))
    await asyncio.sleep(0.5)
    await asyncio.to_thread(app2.kill)
    logs = await rerun
    for log in logs:
        if home[log.student] == "app1":  # untouched by the failure: answered, correct, same session
            assert log.correct and log.closed == 0, log
            assert log.session_ids in ([], [session_of[log.student]]), log
        else:  # finished before the kill, or lost its websocket; never someone else's answer
            assert log.correct or (log.closed == 1 and all("websocket closed" in e for e in log.errors)), log

    # Phase 3: app1's students keep working in their sessions; app2's reconnect the way Streamlit's frontend
    # does (websocket only, still carrying app2's cookie) and land on app1 with a new cookie; late students
    # arrive with no cookie and land on app1 as well.
    survivors = [i for i in range(STUDENTS) if home[i] == "app1"]
    movers = [i for i in range(STUDENTS) if home[i] == "app2"]
    for i in movers:
        await clients[i].close()
    late = [Student.make(STUDENTS + j) for j in range(LATE_STUDENTS)]
    late_clients = [StreamlitClient(proxy_url) for _ in late]
    plan: Plan = ([(students[i], clients[i], ("arith2",), "") for i in survivors]
                  # A new session: its first run shows the pages' defaults (session state died with app2).
                  + [(students[i], clients[i], ("open", "arith", "model"), "ws") for i in movers]
                  + [(s, c, ("open", "arith", "model"), "page") for s, c in zip(late, late_clients)])
    logs = await _phase(plan, reference)
    assert not _problems(logs), _problems(logs)[:5]
    by_student = {log.student: log for log in logs}
    for i in survivors:
        assert by_student[i].session_ids in ([], [session_of[i]])
    for i in movers + [s.index for s in late]:
        log = by_student[i]
        assert set(log.served_by) == {"app1"}, log
        assert log.affinity == [cookie_of["app1"]], log  # the proxy re-pinned the session to the survivor
        assert log.session_ids and log.session_ids[0] != session_of.get(i), log
    for client in clients + late_clients:
        await client.close()


@pytest.mark.slow
@needs_haproxy
def test_two_replicas_behind_haproxy(tmp_path: Path) -> None:
    """60 concurrent sessions through HAProxy: each gets its own answers and stays on one replica, both
    replicas serve; after one is killed, its students reconnect to the other and everyone is still correct;
    a run written to the shared runs folder is listed and loads on both replicas."""
    runs = tmp_path / "runs"
    # The shared folders of a deployment: runs (EXPLORER_RUNS_DIR) and torch's weights cache (TORCH_HOME,
    # empty here: the students use teaching models, whose weights are built in or absent; nothing to fetch).
    # The replicas run with the Docker image's Streamlit settings (deploy/Dockerfile ENV).
    env = {**image_streamlit_env(), "EXPLORER_RUNS_DIR": str(runs), "TORCH_HOME": str(tmp_path / "torch")}
    replicas, haproxy, train = [], None, None
    try:
        replicas = [start_replica(name, free_port(), env, tmp_path / f"{name}.log") for name in ("app1", "app2")]
        with open(tmp_path / "train.log", "wb") as train_log:
            train = subprocess.Popen(
                [sys.executable, "-m", "explorer", "train", "--model", "mnist_cnn", "--dataset", "shapes",
                 "--epochs", "1", "--samples", "200", "--seed", "0", "--device", "cpu", "--out", str(runs / RUN_NAME)],
                cwd=REPO_ROOT, env={**os.environ, **env}, stdout=train_log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        for replica in replicas:
            wait_healthy(replica.url, proc=replica.proc)
        # HAProxy after the replicas answer: at start-up a single failed check marks a server down.
        proxy_port = free_port()
        config = haproxy_config([(r.name, r.port) for r in replicas], proxy_port)
        haproxy = start_haproxy(config, tmp_path, tmp_path / "haproxy.log", binary=HAPROXY)
        proxy_url = f"http://127.0.0.1:{proxy_port}"
        wait_healthy(proxy_url, proc=haproxy)
        assert train.wait(timeout=180) == 0, (tmp_path / "train.log").read_text()[-2000:]
        asyncio.run(_scenario(proxy_url, replicas))
    finally:
        if train is not None and train.poll() is None:
            train.kill()
        stop_process(haproxy)
        for replica in replicas:
            replica.stop()
