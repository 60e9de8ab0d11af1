"""Simulated students that speak Streamlit's own websocket protocol, and the replicas + HAProxy they talk to.

Used by ``scripts/ws_load.py`` (the figures in docs/SERVING.md) and ``tests/test_replicas.py``. Everything here
talks to 127.0.0.1 only, and every loop is bounded (counts and time-outs).

The protocol, as read from Streamlit's server (``web/server/starlette/starlette_websocket.py``,
``runtime/app_session.py``) and checked against a running app:

- The page itself is plain HTTP (``GET /architecture`` returns index.html); the affinity cookie comes from the
  proxy on that response, as a browser would get it.
- The session is the websocket ``/_stcore/stream`` (subprotocol ``streamlit``). No XSRF token and no Origin are
  needed for it: the XSRF check there only guards reading an ``st.login`` cookie. Nothing runs until the client
  sends a ``BackMsg.rerun_script`` (a ``ClientState``: query string, page name or page script hash, and the
  states of the widgets the client knows).
- Each run answers ``new_session``, ``navigation`` (the pages with their script hashes), deltas
  (``metadata.delta_path`` + an element; widgets carry ids ``$$ID-<hash>-<user key>``) and finally
  ``script_finished``. Without ``cached_message_hashes`` the server sends every message in full.
- A keyed widget's id (``$$ID-<hash>-<key>``) is the same in every session and replica and does not change with
  its options. The client sends every widget value it has set with each rerun, as the browser does.
- A reconnect to a replica that does not know the session id starts a new session; its first run shows the
  pages' defaults (values pages seed with ``st.session_state`` win over the client's widget states).
"""
from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Iterable, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
HAPROXY_CFG = Path(__file__).resolve().parent / "haproxy.cfg"
COOKIE_NAME = "SERVERID"
SERVED_BY = "x-served-by"
LOOPBACK = "127.0.0.1"


# ------------------------------------------------------------------------------------ processes
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def haproxy_config(servers: Sequence[tuple[str, int]], bind_port: int) -> str:
    """``deploy/haproxy.cfg`` with its compose-only blocks (DNS server template, Docker resolver) replaced by
    ``server NAME 127.0.0.1:PORT check`` lines, and the environment placeholders filled in for loopback.

    Every other line (cookie affinity, health check, time-outs, redispatch) is the deployed file's own, so the
    test exercises the real policy."""
    text = HAPROXY_CFG.read_text(encoding="utf-8")
    lines = "".join(f"    server {name} {LOOPBACK}:{port} check\n" for name, port in servers)
    text, n_servers = re.subn(r"[ \t]*# BEGIN compose-only servers\n.*?# END compose-only servers\n", lines, text,
                              flags=re.S)
    text, n_resolvers = re.subn(r"# BEGIN compose-only resolvers\n.*?# END compose-only resolvers\n", "", text,
                                flags=re.S)
    if n_servers != 1 or n_resolvers != 1:
        raise ValueError(f"{HAPROXY_CFG} lost its compose-only markers")
    values = {"HAPROXY_BIND": f"{LOOPBACK}:{bind_port}", "COOKIE_KEY": "loopback-test-key"}
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    if "${" in text:
        raise ValueError(f"unfilled placeholder in the rendered HAProxy config: {re.findall(r'[$][{][^}]*[}]', text)}")
    return text


def http_get(url: str, cookie: str = "", timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    """A GET on loopback: (status, lower-cased headers with Set-Cookie values joined by newlines, body)."""
    if not url.startswith(f"http://{LOOPBACK}:"):
        raise ValueError(f"loopback only: {url}")
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback URL checked above
        headers: dict[str, str] = {}
        for key, value in response.headers.items():
            key = key.lower()
            headers[key] = f"{headers[key]}\n{value}" if key in headers else value
        return response.status, headers, response.read()


def wait_healthy(url: str, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> float:
    """Seconds until ``url``/_stcore/health answers ``ok`` (raises TimeoutError, or RuntimeError if ``proc`` dies)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process behind {url} exited with {proc.returncode}")
        try:
            if http_get(f"{url}/_stcore/health", timeout=2)[2].strip() == b"ok":
                return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not healthy after {timeout:.0f} s")


@dataclass
class Replica:
    """One ``streamlit run app.py`` on loopback, in its own process group."""

    name: str
    port: int
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crashed or evicted replica: no goodbye to its websockets."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def image_streamlit_env(dockerfile: Path = HAPROXY_CFG.parent / "Dockerfile") -> dict[str, str]:
    """The ``STREAMLIT_*`` settings the Docker image's ENV sets (e.g. ``STREAMLIT_RUNNER_POST_SCRIPT_GC``), so
    loopback replicas can run as the deployed ones do."""
    pattern = r"^\s*(?:ENV\s+)?(STREAMLIT_[A-Z0-9_]+)=(\S+?)\s*\\?$"
    return dict(re.findall(pattern, dockerfile.read_text(encoding="utf-8"), re.M))


def start_replica(name: str, port: int, env: dict[str, str] | None = None, log_path: Path | None = None) -> Replica:
    cmd = [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "app.py"), "--server.headless", "true",
           "--server.address", LOOPBACK, "--server.port", str(port), "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    full_env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", **(env or {})}
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        if out is not subprocess.DEVNULL:
            out.close()
    return Replica(name, port, proc)


def start_haproxy(config_text: str, folder: Path, log_path: Path | None = None,
                  binary: str = "haproxy") -> subprocess.Popen:
    """HAProxy in the foreground (``-db``) with ``config_text`` written to ``folder/haproxy.cfg``."""
    cfg = folder / "haproxy.cfg"
    cfg.write_text(config_text, encoding="utf-8")
    check = subprocess.run([binary, "-c", "-q", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise RuntimeError(f"haproxy rejected the config: {check.stdout}{check.stderr}")
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen([binary, "-db", "-f", str(cfg)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        if out is not subprocess.DEVNULL:
            out.close()


def stop_process(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except ProcessLookupError:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=15)


def proc_status_mb(pid: int, field_name: str = "VmHWM") -> float:
    """A memory line of /proc/PID/status in MB (VmHWM: peak resident; VmRSS: now); 0 if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (its threads included); 0 if unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


# ------------------------------------------------------------------------------------ the protocol
@dataclass
class Element:
    path: tuple[int, ...]
    kind: str  # the Element oneof: "markdown", "selectbox", "dataframe", "exception", ...
    proto: Any


@dataclass
class RunResult:
    """What one script run sent back."""

    seconds: float  # rerun BackMsg sent → script_finished received
    status: str  # ForwardMsg.ScriptFinishedStatus name, or "" when the run did not finish
    elements: list[Element] = field(default_factory=list)
    pages: dict[str, str] = field(default_factory=dict)  # url path → page script hash (navigation message)
    session_id: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "FINISHED_SUCCESSFULLY" and not self.exceptions()

    def exceptions(self) -> list[str]:
        return [f"{el.proto.type}: {el.proto.message}" for el in self.elements if el.kind == "exception"]

    def widget(self, key: str) -> Any | None:
        """The last element proto of the widget with user key ``key``."""
        found = None
        for el in self.elements:
            wid = getattr(el.proto, "id", "")
            if isinstance(wid, str) and wid.startswith("$$ID-") and wid.endswith("-" + key):
                found = el.proto
        return found

    def texts(self) -> list[str]:
        """Every string an element shows (bodies, labels, values, options), arrow tables left out."""
        out: list[str] = []
        for el in self.elements:
            out.extend(_strings(el.proto))
        return out

    def tables(self) -> list[Any]:
        """The dataframes drawn, as pandas DataFrames (decoded from their Arrow IPC bytes)."""
        import pyarrow as pa

        frames = []
        for el in self.elements:
            if el.kind in ("dataframe", "arrow_data_frame", "arrow_table"):
                data = _arrow_bytes(el.proto)
                if data:
                    frames.append(pa.ipc.open_stream(data).read_all().to_pandas())
        return frames


def _strings(msg: Any, depth: int = 0) -> Iterable[str]:
    # By value type: protobuf 6 field descriptors no longer say whether they are repeated.
    if depth > 6:
        return
    for descriptor, value in msg.ListFields():
        if descriptor.message_type is not None and descriptor.message_type.name == "ArrowData":
            continue
        repeated = not isinstance(value, (str, bytes, int, float, bool)) and not hasattr(value, "ListFields")
        items = value if repeated else [value]
        for item in items:
            if isinstance(item, str):
                yield item
            elif hasattr(item, "ListFields"):
                yield from _strings(item, depth + 1)


def _arrow_bytes(msg: Any, depth: int = 0) -> bytes:
    for descriptor, value in msg.ListFields():
        if descriptor.name == "data" and isinstance(value, bytes):
            return value
        if hasattr(value, "ListFields") and depth < 3:
            found = _arrow_bytes(value, depth + 1)
            if found:
                return found
    return b""


class SessionClosed(ConnectionError):
    """The websocket closed (the replica died or dropped the session)."""


class StreamlitClient:
    """One browser tab: a cookie jar, one websocket session, the widget values it has set.

    ``base_url`` must be ``http://127.0.0.1:PORT`` (the proxy or one replica)."""

    def __init__(self, base_url: str, run_timeout: float = 120.0) -> None:
        if not base_url.startswith(f"http://{LOOPBACK}:"):
            raise ValueError(f"loopback only: {base_url}")
        self.base_url = base_url.rstrip("/")
        self.run_timeout = run_timeout
        self.cookies: dict[str, str] = {}
        self.widget_values: dict[str, tuple[str, Any]] = {}  # user key → (WidgetState field, value)
        self.widget_ids: dict[str, str] = {}  # user key → widget id (as last drawn)
        self.pages: dict[str, str] = {}
        self.current_page = ""  # URL path of the page shown; a rerun without a page would fall back to home
        self.served_by = ""  # X-Served-By of the websocket upgrade (the proxy's server name)
        self.session_id = ""
        self._ws: Any = None

    # --- connection
    def _cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def _take_cookies(self, set_cookie: str) -> None:
        for line in set_cookie.split("\n"):
            jar = SimpleCookie()
            try:
                jar.load(line)
            except Exception:  # a cookie the stdlib cannot parse is not one we need
                continue
            for key, morsel in jar.items():
                self.cookies[key] = morsel.value

    @property
    def affinity(self) -> str:
        """The proxy's affinity cookie value ("" when talking to a replica directly)."""
        return self.cookies.get(COOKIE_NAME, "")

    async def load_page(self, page: str = "") -> str:
        """GET the page as a browser would (this is where the proxy sets the affinity cookie); returns X-Served-By."""
        status, headers, _ = await asyncio.to_thread(http_get, f"{self.base_url}/{page}", self._cookie_header())
        if status != 200:
            raise ConnectionError(f"GET /{page}: HTTP {status}")
        self._take_cookies(headers.get("set-cookie", ""))
        return headers.get(SERVED_BY, "")

    async def fetch(self, path: str) -> tuple[int, str, bytes]:
        """GET ``path`` (e.g. a ``/media/...`` URL from the page) with this tab's cookies: (HTTP status,
        X-Served-By, body). Media files live in the memory of the replica that ran the script."""
        try:
            status, headers, body = await asyncio.to_thread(http_get, self.base_url + path, self._cookie_header())
        except urllib.error.HTTPError as exc:
            return exc.code, (exc.headers.get(SERVED_BY, "") if exc.headers else ""), b""
        return status, headers.get(SERVED_BY, ""), body

    async def connect(self) -> None:
        from websockets.asyncio.client import connect

        url = "ws" + self.base_url[4:] + "/_stcore/stream"
        headers = {"Cookie": self._cookie_header()} if self.cookies else {}
        self._ws = await connect(url, subprotocols=["streamlit"], additional_headers=headers, max_size=None,
                                 open_timeout=30, ping_interval=None, compression=None)
        response = self._ws.response
        if response is not None:
            self._take_cookies("\n".join(response.headers.get_all("Set-Cookie")))
            self.served_by = response.headers.get(SERVED_BY, "")
        self.session_id = ""

    async def open(self, page: str = "") -> None:
        await self.load_page(page)
        await self.connect()

    async def close(self) -> None:
        if self._ws is not None:
            try:
                await asyncio.wait_for(self._ws.close(), 5)
            except Exception:  # closing a dead connection: nothing left to do
                pass
            self._ws = None

    # --- runs
    def set_widget(self, key: str, value: Any, kind: str) -> None:
        """Remember a widget value (``kind``: the WidgetState field, e.g. "string_value", "double_value",
        "bool_value", "double_array_value"); it is sent with every later rerun, as a browser does."""
        self.widget_values[key] = (kind, value)

    def _client_state(self, page: str | None) -> Any:
        from streamlit.proto.ClientState_pb2 import ClientState

        state = ClientState()
        page = self.current_page if page is None else page
        if page:
            page_hash = self.pages.get(page)
            if page_hash:
                state.page_script_hash = page_hash
            else:
                state.page_name = page  # the URL path; the server resolves it (first run of a session)
        for key, (kind, value) in self.widget_values.items():
            wid = self.widget_ids.get(key)
            if not wid:
                continue  # not drawn yet: the server would ignore it anyway
            ws = state.widget_states.widgets.add()
            ws.id = wid
            if kind == "double_array_value":
                ws.double_array_value.data.extend(float(v) for v in value)
            else:
                setattr(ws, kind, value)
        return state

    async def rerun(self, page: str | None = None) -> RunResult:
        """Send one rerun (optionally switching to ``page``, a URL path like "architecture") and collect the
        run's messages until ``script_finished``. Raises SessionClosed if the websocket dies."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
        from websockets.exceptions import ConnectionClosed

        if self._ws is None:
            raise SessionClosed("not connected")
        if page is not None:
            self.current_page = page
        back = BackMsg()
        back.rerun_script.CopyFrom(self._client_state(page))
        result = RunResult(seconds=0.0, status="")
        start = time.perf_counter()
        deadline = start + self.run_timeout
        try:
            await self._ws.send(back.SerializeToString())
            while True:
                left = deadline - time.perf_counter()
                if left <= 0:
                    result.seconds = time.perf_counter() - start
                    return result
                data = await asyncio.wait_for(self._ws.recv(), left)
                msg = ForwardMsg()
                msg.ParseFromString(data)
                kind = msg.WhichOneof("type")
                if kind == "new_session":
                    self.session_id = result.session_id = msg.new_session.initialize.session_id or self.session_id
                elif kind == "navigation":
                    for app_page in msg.navigation.app_pages:
                        if app_page.url_pathname or app_page.is_default:
                            result.pages[app_page.url_pathname] = app_page.page_script_hash
                    self.pages.update(result.pages)
                elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                    element = msg.delta.new_element
                    inner = element.WhichOneof("type")
                    proto = getattr(element, inner) if inner else element
                    result.elements.append(Element(tuple(msg.metadata.delta_path), inner or "", proto))
                    wid = getattr(proto, "id", "")
                    if isinstance(wid, str) and wid.startswith("$$ID-"):
                        self.widget_ids[wid.rsplit("-", 1)[-1]] = wid
                elif kind == "script_finished":
                    status = ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished)
                    if status == "FINISHED_EARLY_FOR_RERUN":
                        continue  # superseded by our own rerun (fastReruns); the next run answers it
                    result.status = status
                    result.seconds = time.perf_counter() - start
                    return result
        except (ConnectionClosed, ConnectionError, OSError) as exc:
            self._ws = None
            raise SessionClosed(str(exc) or type(exc).__name__) from exc
        except asyncio.TimeoutError:
            result.seconds = time.perf_counter() - start
            return result


# ------------------------------------------------------------------------------------ the students
# Teaching models only: their weights are built into the repository (or absent: plain18), so no page tries a
# download (loopback only), and they are small (2 shared cores). The fixed-size ones identify themselves by their layer table; plain18 (global
# pooling) accepts any input size, which gives every student an answer no other student gets.
STUDENT_MODELS = ("mnist_cnn", "tiny_vgg", "lenet5")
FLEX_MODEL = "plain18"
TABLE_COLUMNS = ["layer", "type", "input_shape", "output_shape"]


def conv_output(n: int, f: int = 3, p: int = 0, s: int = 2, d: int = 1) -> int:
    """Output size of a convolution (the course formula), independent of the app's code."""
    return (n + 2 * p - d * (f - 1) - 1) // s + 1


@dataclass
class Student:
    """One simulated student: a model, and an input size and a Conv-arithmetic N unlike its neighbours'."""

    index: int
    model: str
    height: int
    width: int
    arith_n: int  # the Conv-arithmetic page's N and P (F=3, S=2, D=1 stay at the page's defaults)
    arith_p: int

    @classmethod
    def make(cls, index: int) -> "Student":
        # Sizes 32..63 × 32..63: 1,024 distinct; (N, P) in 9..64 × 0..3: 224 distinct.
        return cls(index, STUDENT_MODELS[index % len(STUDENT_MODELS)], 32 + index % 32, 32 + (index // 32) % 32,
                   arith_n=9 + index % 56, arith_p=(index // 56) % 4)


@dataclass
class SessionLog:
    student: int
    affinity: list[str] = field(default_factory=list)  # the affinity cookie after each connection
    served_by: list[str] = field(default_factory=list)  # the proxy's server name for each HTTP GET / websocket
    session_ids: list[str] = field(default_factory=list)  # Streamlit session ids seen, in order
    steps: list[tuple[str, float, bool]] = field(default_factory=list)  # (step, seconds, own correct answer)
    errors: list[str] = field(default_factory=list)
    closed: int = 0  # websockets that died under us

    @property
    def correct(self) -> bool:
        return not self.errors and all(ok for _, _, ok in self.steps)


Reference = dict[str, list[tuple[str, ...]]]  # model → its layer table rows (TABLE_COLUMNS), natural input size


def table_rows(result: RunResult) -> list[tuple[str, ...]]:
    """The Layer-shapes table's rows (TABLE_COLUMNS, indentation and spaces removed); [] if none drawn.

    Column headers are matched loosely ("Input shape" or "input_shape"): the page shows English headers, the
    CSV snake-case ones."""
    for frame in result.tables():
        frame = frame.rename(columns=lambda c: str(c).strip().lower().replace(" ", "_"))
        if set(TABLE_COLUMNS) <= set(frame.columns):
            return [tuple(str(v).replace("\u2003", "").replace(" ", "") for v in row)
                    for row in frame[TABLE_COLUMNS].itertuples(index=False)]
    return []


def check_own_answer(step: str, student: Student, result: RunResult, reference: Reference) -> str:
    """"" if ``result`` is this student's own answer for ``step``, else what is wrong.

    ``reference``: each model's table at its natural size, recorded by one session alone before the crowd
    (:func:`record_reference`); the models' tables differ, so another student's answer cannot pass."""
    if result.status != "FINISHED_SUCCESSFULLY":
        return f"{step}: run ended {result.status or 'without script_finished (time-out)'}"
    if result.exceptions():
        return f"{step}: exception {result.exceptions()[0][:200]}"
    if step == "arith":
        n, p = student.arith_n, student.arith_p
        out = conv_output(n, p=p)
        # The page's code line: "nn.Conv2d(..., padding=P, dilation=1)  # N×N → O×O"
        expected = re.compile(rf"padding={p},.*# {n}×{n} → {out}×{out}\b")
        if any(expected.search(text) for text in result.texts()):
            return ""
        return f"arith: no 'padding={p} ... # {n}×{n} → {out}×{out}' on the page"
    if step in ("model", "flex"):
        model = student.model if step == "model" else FLEX_MODEL
        rows = table_rows(result)
        if rows != reference[model]:
            first = rows[0] if rows else None
            return f"{step}: the layer table is not {model}'s (first row {first})"
        return ""
    if step in ("size", "recheck"):
        rows = table_rows(result)
        if [r[:2] for r in rows] != [r[:2] for r in reference[FLEX_MODEL]]:
            return f"{step}: the layer table is not {FLEX_MODEL}'s"
        wanted = f"x{student.height}x{student.width}"
        if not rows[0][2].endswith(wanted):
            return f"{step}: first layer input {rows[0][2]!r}, not ...{wanted}"
        return ""
    return ""


# step → (page, widget changes); "arith2" is "arith" with the next N (a later visit of the same student)
STEPS = ("open", "arith", "model", "flex", "size", "arith2", "recheck")


def _apply_step(client: StreamlitClient, student: Student, step: str) -> str:
    if step == "arith2":
        student.arith_n = 9 + (student.arith_n - 9 + 17) % 56
    if step in ("arith", "arith2"):
        client.set_widget("ca_n", float(student.arith_n), "double_value")
        client.set_widget("ca_p", float(student.arith_p), "double_value")
    elif step == "model":
        client.set_widget("sel_model", student.model, "string_value")
    elif step == "flex":
        # Alone in its rerun: the model's on_change resets the input size to the model's own.
        client.set_widget("sel_model", FLEX_MODEL, "string_value")
    elif step == "size":
        client.set_widget("sel_input", f"{student.height}x{student.width}", "string_value")
    return "conv_arithmetic" if step in ("open", "arith", "arith2") else "architecture"


async def connect_student(client: StreamlitClient, log: SessionLog, page_load: bool = True) -> None:
    """Open (``page_load``: GET the page first, as a browser tab does) or reconnect the websocket only (as
    Streamlit's frontend does after a drop), and log which replica the proxy chose."""
    if page_load:
        log.served_by.append(await client.load_page("conv_arithmetic"))
    await client.connect()
    log.affinity.append(client.affinity)
    log.served_by.append(client.served_by)


async def run_steps(client: StreamlitClient, student: Student, log: SessionLog, steps: Sequence[str],
                    reference: Reference, think: float = 0.0) -> bool:
    """Run ``steps`` (names from STEPS) on a connected client, each one rerun checked with
    :func:`check_own_answer`. False when the websocket died (counted in ``log.closed``, not raised).

    ``think``: mean seconds a student reads before each click (uniform 0.5-1.5x, seeded by the student)."""
    rng = random.Random(student.index * 7919 + len(log.steps))
    for step in steps:
        if think > 0:
            await asyncio.sleep(think * rng.uniform(0.5, 1.5))
        page = _apply_step(client, student, step)
        try:
            result = await client.rerun(page)
        except SessionClosed as exc:
            log.closed += 1
            log.errors.append(f"{step}: websocket closed ({exc})")
            return False
        if result.session_id and result.session_id not in log.session_ids:
            log.session_ids.append(result.session_id)
        problem = check_own_answer("arith" if step == "arith2" else step, student, result, reference)
        if step in ("size", "recheck") and not problem:
            problem = await _fetch_own_csv(client, student, result, log)
        log.steps.append((step, result.seconds, not problem))
        if problem:
            log.errors.append(problem)
    return True


async def _fetch_own_csv(client: StreamlitClient, student: Student, result: RunResult, log: SessionLog) -> str:
    """Download the page's layer table as CSV, as the browser would: the file exists only in the memory of the
    replica that drew this student's page (its own input size makes it unlike any other session's), so this
    fails (404) when a session's HTTP requests are not kept on its replica."""
    urls = [el.proto.url for el in result.elements
            if el.kind == "download_button" and re.fullmatch(r"/media/\w+\.csv", str(getattr(el.proto, "url", "")))]
    if not urls:
        return "csv: no CSV download on the page"
    status, served_by, body = await client.fetch(urls[0])
    log.served_by.append(served_by)
    if status != 200:
        return f"csv: GET {urls[0]} answered {status}"
    if f"x{student.height}x{student.width}".encode() not in body:
        return "csv: the download is not this student's table"
    return ""


async def record_reference(base_url: str, models: Sequence[str] = STUDENT_MODELS + (FLEX_MODEL,)) -> Reference:
    """Each model's layer table at its natural input size, from one session running alone (also warms the
    replica up: the first model page imports torch). Raises if a table is missing or two models' tables are
    equal (then they could not tell students apart)."""
    client = StreamlitClient(base_url)
    reference: Reference = {}
    try:
        await client.open("conv_arithmetic")
        await client.rerun("conv_arithmetic")
        for model in models:
            client.set_widget("sel_model", model, "string_value")
            result = await client.rerun("architecture")
            rows = table_rows(result)
            if not result.ok or not rows:
                raise RuntimeError(f"no layer table for {model}: {result.status} {result.exceptions()[:1]}")
            reference[model] = rows
    finally:
        await client.close()
    tables = list(reference.values())
    if any(a == b for i, a in enumerate(tables) for b in tables[i + 1:]):
        raise RuntimeError("two reference models have the same layer table")
    return reference


# ------------------------------------------------------------------------------------ figures
def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def summarise_steps(logs: Iterable[SessionLog]) -> dict[str, dict[str, float]]:
    """Per step name and "all": count, p50, p95, max and mean seconds from rerun to script_finished."""
    by_step: dict[str, list[float]] = {}
    for log in logs:
        for step, seconds, _ in log.steps:
            by_step.setdefault(step, []).append(seconds)
    every = [s for values in by_step.values() for s in values]
    if every:
        by_step["all"] = every
    return {step: {"n": len(v), "p50": percentile(v, 50), "p95": percentile(v, 95), "max": max(v),
                   "mean": statistics.fmean(v)} for step, v in by_step.items()}
