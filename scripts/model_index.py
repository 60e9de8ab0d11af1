"""Rewrite explorer/models/model_names.json from the live registry (run after torchvision or the project's
networks change; tests/test_cli.py fails when the file and the registry disagree).

    python scripts/model_index.py

The index describes the plain registry (the project's networks and torchvision's): names that timm or an
operator's files add are left out here, and their presence makes the CLI build the registry instead.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from explorer.models import get_entry, list_models
    from explorer.models.names import INDEX_FILE, write_index

    data = write_index([n for n in list_models() if get_entry(n).source not in ("timm", "user")])
    print(f"{INDEX_FILE.relative_to(ROOT)}: {len(data['names'])} names, torchvision {data['torchvision']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
