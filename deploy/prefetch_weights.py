"""Put the pretrained weights the app offers into ``$TORCH_HOME/hub/checkpoints`` once, before class.

The app loads "pretrained" weights from torch's hub cache and only downloads a file that is missing (with a
short time-out, falling back to random weights). A classroom server with no internet, or many replicas that
should not each download the same 500 MB, therefore needs the cache filled beforehand, on the volume every
replica mounts as ``TORCH_HOME``:

    python deploy/prefetch_weights.py                          # every model of the app with pretrained weights
    python deploy/prefetch_weights.py --models resnet18,vgg16  # just these
    python deploy/prefetch_weights.py --list                   # what would be fetched, nothing downloaded

Each file is written to a temporary name and renamed when complete, so a replica never reads half a file.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def app_model_names() -> list[str]:
    """The app's model list (its registry), or torchvision's classification models if that cannot load."""
    try:
        from explorer.models import list_models  # the app's own list: what the sidebar offers

        return list(list_models())
    except ImportError:
        import torchvision

        return list(torchvision.models.list_models(module=torchvision.models))


def default_weights(name: str) -> Any | None:
    """The weights the app loads for "pretrained" (the enum's DEFAULT), or None for models without any."""
    try:
        from explorer.models import get_entry

        enum = get_entry(name).weights_enum
    except (ImportError, KeyError, ValueError):
        enum = None
    if enum is None:
        import torchvision

        try:
            enum = torchvision.models.get_model_weights(name)
        except (ValueError, KeyError):
            return None
    return getattr(enum, "DEFAULT", enum)


def checkpoint_path(weights: Any) -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def fetch(weights: Any, path: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    os.close(fd)
    try:
        torch.hub.download_url_to_file(weights.url, tmp, progress=False)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="", help="comma-separated model names (default: all the app offers)")
    parser.add_argument("--list", action="store_true", help="only print what would be fetched")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()] or app_model_names()
    failures = 0
    for name in names:
        weights = default_weights(name)
        if weights is None:
            print(f"{name}: no pretrained weights known (a teaching model, or not a model name)")
            continue
        path = checkpoint_path(weights)
        if path.is_file():
            print(f"{name}: cached {path}")
        elif args.list:
            print(f"{name}: would fetch {weights.url} -> {path}")
        else:
            try:
                fetch(weights, path)
                print(f"{name}: fetched {path} ({path.stat().st_size / 2**20:.0f} MB)")
            except Exception as exc:  # keep going: one unreachable file should not stop the rest
                failures += 1
                print(f"{name}: FAILED {weights.url}: {exc}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
