"""``bench [--quick] [--models a,b] [--device auto|cpu|cuda]``: speed of the analyses against their floors."""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="benchmark forward, Grad-CAM, full analysis and cached redraws against their floors",
        description="Medians over repeated runs at 224x224 (random weights), each as a ratio to its floor, with "
                    "its target beside it (MISSED where missed): Grad-CAM <= 1.3x forward+grad-to-layer; full "
                    "analysis <= 1.4x a bare forward (1.5x on CUDA); cached interaction and page rerun <= 50 ms; "
                    "first page <= 2 s, a warm server's new session <= 1 s; CLI answers <= 1 s.")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (5 instead of 15)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per measurement (overrides --quick)")
    parser.add_argument("--models", default="resnet18,vgg16,googlenet", help="comma-separated model names")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    parser.add_argument("--size", type=int, default=224, help="input height and width (default: 224)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall time (default) or this process's CPU time (robust on a shared machine; "
                             "use with --threads 1)")
    parser.add_argument("--no-app-start", action="store_true", help="skip timing `streamlit run` to the first page")
    parser.add_argument("--no-cli", action="store_true", help="skip timing the CLI's quick answers")
    parser.add_argument("--no-pytorch-grad-cam", action="store_true", help="skip the pytorch-grad-cam comparison")
    parser.add_argument("--no-page-reruns", action="store_true",
                        help="skip timing the real pages' reruns after one widget change (AppTest, child process)")
    parser.add_argument("--compare-malloc", action="store_true",
                        help="also run the model measurements in two child processes, with glibc's default malloc "
                             "and with GLIBC_TUNABLES raising the mmap/trim thresholds, and compare (page faults)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the results as Markdown to PATH")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results as JSON to PATH")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import platform

    import torch

    from explorer.devtools import appserver
    from explorer.devtools import bench
    from explorer.devtools import bench_pages
    from explorer.core import describe_device, pick_device

    device = pick_device(args.device)
    repeats = args.repeats or (5 if args.quick else 15)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    reports = []
    bench.use_clock(args.clock)
    with bench.torch_threads(args.threads):
        load = " | load average %.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
        header = (f"device: {describe_device(device)} | torch {torch.__version__} | python {platform.python_version()} | "
                  f"{repeats} rounds, median | {args.clock} clock | input {args.size}x{args.size} | random weights{load}")
        log(header)
        for name in names:
            reports.append(bench.bench_model(name, device, repeats, size=args.size,
                                             with_pgc=not args.no_pytorch_grad_cam, log=log))
    start = floor = None
    imports = ""
    if not args.no_app_start:
        log("app start…")
        start = appserver.measure_app_start(warmed=True, restart=True)
        floor = appserver.measure_app_start(floor=True)
        imports = bench.imports_text(bench.measure_imports())
    reruns = ""
    if not args.no_page_reruns:
        log("page reruns (AppTest)…")
        reruns = bench_pages.page_reruns_text(bench_pages.measure_page_reruns(names, repeats, args.threads))
    cli = ""
    if not args.no_cli:
        log("CLI answers…")
        cli = bench.cli_text(bench.measure_cli())
    malloc = bench.compare_malloc(args, names, log) if args.compare_malloc else ""
    text = "\n".join([header, "", bench.markdown_table(reports), "", bench.details_text(reports)]
                     + (["", reruns] if reruns else []) + (["", bench.app_start_text(start, floor)] if start else []) + ([imports] if imports else [])
                     + (["", cli] if cli else [])
                     + (["", malloc] if malloc else []))
    print(text)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"header": header, "models": [asdict(r) for r in reports],
                       "app_start": asdict(start) if start else None,
                       "app_start_floor": asdict(floor) if floor else None}, fh, indent=1, default=str)
    return 0
