"""A light classroom load over Streamlit's own websocket protocol (no browser): N replicas behind HAProxy.

Loopback only and bounded. By default starts ``--replicas`` app servers on 127.0.0.1 and HAProxy in front of
them with ``deploy/haproxy.cfg`` (cookie affinity), then runs ``--students`` simulated students at once
through the proxy (``deploy/loadclient.py``). Each student loads the page (gets the affinity cookie), opens
the websocket, and clicks through: Conv arithmetic with its own N and P, Layer shapes of a small model, the
size-agnostic plain18 at its own input size, then again (``--repeat``). Every answer is checked to be the
student's own (its N/P in the formula line, its model's layer table, its input size in the first row).

Prints server-side page times (rerun sent → script_finished received) per step, p50/p95; per replica the
sessions it served, its peak resident memory (VmHWM) and CPU seconds; CPU seconds per page rerun and the
sessions per core that implies; errors and wrong answers. Exit status 1 when any answer was wrong or a
session changed replica.

    python scripts/ws_load.py --replicas 1 --students 30
    python scripts/ws_load.py --replicas 2 --students 30 --json artifacts/ws_load_2.json
    python scripts/ws_load.py --url http://127.0.0.1:8080 --students 10   # an already running proxy
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deploy.loadclient import (LOOPBACK, STEPS, Replica, SessionLog, StreamlitClient, Student,  # noqa: E402
                               connect_student, cpu_seconds, free_port, haproxy_config, proc_status_mb,
                               record_reference, run_steps, start_haproxy, start_replica, stop_process,
                               summarise_steps, wait_healthy)

SETUP_STEPS = ("open", "arith", "model", "flex", "size")
REPEAT_STEPS = ("arith2", "recheck")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=2, help="app servers to start behind HAProxy (1-8)")
    parser.add_argument("--url", default="", help="use this running proxy/app (http://127.0.0.1:PORT) instead")
    parser.add_argument("--students", type=int, default=30, help="simulated students at once (1-500)")
    parser.add_argument("--repeat", type=int, default=2,
                        help="after the setup clicks, repeat (new N, re-view Layer shapes) this many times (0-50)")
    parser.add_argument("--ramp", type=float, default=2.0, help="spread the students' arrivals over these seconds")
    parser.add_argument("--think", type=float, default=0.0,
                        help="mean seconds a student reads before each click (0: click as soon as answered)")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop the crowd after this long")
    parser.add_argument("--click-interval", type=float, default=10.0,
                        help="seconds between a real student's clicks, for the sessions-per-core estimate")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment for the replicas, e.g. STREAMLIT_RUNNER_POST_SCRIPT_GC=false (repeatable)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--keep-logs", type=Path, default=None, help="write the servers' logs in this folder")
    args = parser.parse_args(argv)
    if any("=" not in item for item in args.env):
        parser.error("--env takes NAME=VALUE")
    if args.url and not args.url.startswith(f"http://{LOOPBACK}:"):
        parser.error(f"--url must be http://{LOOPBACK}:PORT (loopback only)")
    if (not 1 <= args.replicas <= 8 or not 1 <= args.students <= 500 or not 0 <= args.repeat <= 50
            or not 0 <= args.think <= 120):
        parser.error("--replicas 1-8, --students 1-500, --repeat 0-50, --think 0-120")
    return args


class Deployment:
    """N replicas + HAProxy on loopback, stopped on exit."""

    def __init__(self, replicas: int, folder: Path, keep_logs: Path | None, env: dict[str, str]) -> None:
        self.folder = folder
        self.env = env
        self.logs = keep_logs or folder
        self.logs.mkdir(parents=True, exist_ok=True)
        self.replicas: list[Replica] = []
        self.count = replicas
        self.haproxy = None
        self.proxy_port = free_port()

    def __enter__(self) -> "Deployment":
        haproxy = shutil.which("haproxy")
        if haproxy is None:
            raise SystemExit("haproxy is not installed (apt-get install -y haproxy), or pass --url")
        env = {"EXPLORER_RUNS_DIR": str(self.folder / "runs"), **self.env}
        try:
            for i in range(self.count):
                name = f"app{i + 1}"
                self.replicas.append(start_replica(name, free_port(), env, self.logs / f"{name}.log"))
            for replica in self.replicas:
                wait_healthy(replica.url, proc=replica.proc)
            # HAProxy after the replicas: at start-up one failed check marks a server down for `rise` checks.
            config = haproxy_config([(r.name, r.port) for r in self.replicas], self.proxy_port)
            self.haproxy = start_haproxy(config, self.folder, self.logs / "haproxy.log", binary=haproxy)
            wait_healthy(self.url, proc=self.haproxy)
        except BaseException:
            self.__exit__()
            raise
        return self

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.proxy_port}"

    def __exit__(self, *exc: object) -> None:
        stop_process(self.haproxy)
        for replica in self.replicas:
            replica.stop()


async def warm_up(replica_urls: list[str]) -> dict:
    """One session alone on each replica: imports torch there and records each model's table (the reference
    the students' answers are checked against; every replica must draw the same)."""
    references = [await record_reference(url) for url in replica_urls]
    for url, ref in zip(replica_urls[1:], references[1:]):
        if ref != references[0]:
            raise RuntimeError(f"{url} draws different layer tables than {replica_urls[0]}")
    return references[0]


async def one_student(index: int, url: str, reference: dict, repeat: int, delay: float,
                      think: float) -> SessionLog:
    log = SessionLog(index)
    await asyncio.sleep(delay)
    student = Student.make(index)
    client = StreamlitClient(url)
    try:
        await connect_student(client, log)
        if await run_steps(client, student, log, SETUP_STEPS, reference, think):
            for _ in range(repeat):
                if not await run_steps(client, student, log, REPEAT_STEPS, reference, think):
                    break
    except Exception as exc:  # a student that cannot even connect is an error to report, not a crash
        log.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        await client.close()
    return log


async def crowd(url: str, reference: dict, args: argparse.Namespace) -> tuple[list[SessionLog], float]:
    start = time.perf_counter()
    tasks = [asyncio.create_task(one_student(i, url, reference, args.repeat, args.ramp * i / args.students,
                                             args.think))
             for i in range(args.students)]
    done, pending = await asyncio.wait(tasks, timeout=args.max_seconds)
    for task in pending:
        task.cancel()
    logs = [t.result() for t in done if not t.cancelled() and t.exception() is None]
    return logs, time.perf_counter() - start


def report(args: argparse.Namespace, logs: list[SessionLog], wall: float, replicas: list[Replica],
           cpu_before: dict[str, float]) -> dict:
    steps = summarise_steps(logs)
    wrong = [log for log in logs if not log.correct]
    # One replica per session: every GET and websocket of a session was answered by the same server.
    moved = [log for log in logs if len(set(log.served_by)) > 1 or len(set(log.affinity)) > 1]
    per_replica: dict[str, dict] = {}
    for log in logs:
        name = log.served_by[-1] if log.served_by else "?"
        per_replica.setdefault(name, {"sessions": 0})["sessions"] += 1
    reruns = sum(len(log.steps) for log in logs)
    cpu_total = 0.0
    for replica in replicas:
        entry = per_replica.setdefault(replica.name, {"sessions": 0})
        entry["peak_rss_mb"] = round(proc_status_mb(replica.proc.pid, "VmHWM"), 1)
        entry["cpu_s"] = round(cpu_seconds(replica.proc.pid) - cpu_before.get(replica.name, 0.0), 2)
        cpu_total += entry["cpu_s"]
    cores = os.cpu_count() or 1
    figures: dict = {
        "replicas": len(replicas) or None, "env": args.env, "students": args.students, "think_s": args.think,
        "repeat": args.repeat, "cores": cores, "wall_s": round(wall, 1),
        "reruns": reruns, "steps": {k: {m: round(v, 3) if isinstance(v, float) else v for m, v in d.items()}
                                    for k, d in steps.items()},
        "per_replica": per_replica, "wrong_sessions": len(wrong), "sessions_moved": len(moved),
        "sessions_finished": len(logs), "errors": [e for log in wrong for e in log.errors][:20],
        # The students run on the same machine: their own CPU time competes with the replicas'.
        "client_cpu_s": round(time.process_time(), 1),
    }
    if replicas and reruns:
        cpu_per_rerun = cpu_total / reruns
        figures["cpu_s_per_rerun"] = round(cpu_per_rerun, 3)
        # A student clicks every --click-interval seconds: one core serves interval / cpu-per-rerun of them.
        figures["sessions_per_core_estimate"] = round(args.click_interval / cpu_per_rerun, 1)
        figures["reruns_per_s"] = round(reruns / wall, 2)
    print(f"\n{len(logs)}/{args.students} students finished in {wall:.1f} s, {reruns} page reruns, "
          f"{len(replicas) or '?'} replica(s), {cores} cores, think {args.think:g} s"
          + (f", replica env {' '.join(args.env)}" if args.env else ""))
    print(f"{'step':<9}{'n':>5}{'p50 s':>8}{'p95 s':>8}{'max s':>8}")
    for name in list(STEPS) + ["all"]:
        if name in steps:
            d = steps[name]
            print(f"{name:<9}{d['n']:>5}{d['p50']:>8.3f}{d['p95']:>8.3f}{d['max']:>8.3f}")
    for name, entry in sorted(per_replica.items()):
        extra = (f", peak RSS (VmHWM) {entry['peak_rss_mb']:.0f} MB, CPU {entry['cpu_s']:.1f} s"
                 if "peak_rss_mb" in entry else "")
        print(f"replica {name}: {entry['sessions']} sessions{extra}")
    if "cpu_s_per_rerun" in figures:
        print(f"CPU per page rerun {figures['cpu_s_per_rerun']:.3f} s (all replicas) -> about "
              f"{figures['sessions_per_core_estimate']:.0f} sessions per core at one click every "
              f"{args.click_interval:g} s; measured {args.students / cores:.1f} concurrent sessions per core")
    print(f"load client CPU {figures['client_cpu_s']:.1f} s (same machine)")
    print(f"wrong answers: {len(wrong)} sessions; sessions that changed replica: {len(moved)}")
    for error in figures["errors"][:5]:
        print("  ", error)
    return figures


async def main_async(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="ws_load_") as tmp:
        if args.url:
            reference = await warm_up([args.url])
            logs, wall = await crowd(args.url, reference, args)
            figures = report(args, logs, wall, [], {})
        else:
            env = dict(item.split("=", 1) for item in args.env)
            with Deployment(args.replicas, Path(tmp), args.keep_logs, env) as deployment:
                print(f"{args.replicas} replica(s) behind HAProxy at {deployment.url}")
                reference = await warm_up([r.url for r in deployment.replicas])
                cpu_before = {r.name: cpu_seconds(r.proc.pid) for r in deployment.replicas}
                logs, wall = await crowd(deployment.url, reference, args)
                figures = report(args, logs, wall, deployment.replicas, cpu_before)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1))
    ok = figures["wrong_sessions"] == 0 and figures["sessions_moved"] == 0 and len(logs) == args.students
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
