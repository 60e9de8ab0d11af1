"""Safe extraction of an uploaded zip of images (:func:`extract_zip`).

Every member is checked before anything is written: archives that would write outside their folder,
links, encrypted members and zip bombs are refused with a ``ValueError`` that says why.
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Sequence


MAX_ZIP_MEMBERS = 20_000
MAX_ZIP_TOTAL_BYTES = 2 * 1024**3
MAX_ZIP_RATIO = 100  # uncompressed/compressed; photos barely compress, zip bombs compress ~1000×
_RATIO_CHECK_FROM = 1024 * 1024  # tiny text files may compress well and harm nobody
_IGNORED_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}


def _ignored_member(parts: Sequence[str]) -> bool:
    return (parts[0] == "__MACOSX" or parts[-1].startswith("._") or parts[-1] in _IGNORED_NAMES)


def _safe_member_parts(name: str) -> tuple[str, ...]:
    """The path components of a zip member, or ``ValueError`` if it could land outside the target."""
    unified = name.replace("\\", "/")  # Windows tools sometimes write backslashes
    if unified.startswith("/") or PurePosixPath(unified).is_absolute():
        raise ValueError(f"unsafe zip member {name!r}: absolute path")
    if len(unified) >= 2 and unified[1] == ":":
        raise ValueError(f"unsafe zip member {name!r}: drive letter")
    parts = tuple(p for p in unified.split("/") if p not in ("", "."))
    if any(p == ".." for p in parts):
        raise ValueError(f"unsafe zip member {name!r}: path traversal ('..')")
    if any("\x00" in p for p in parts):
        raise ValueError(f"unsafe zip member {name!r}: NUL byte in name")
    return parts


def _is_link(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return stat.S_ISLNK(mode)


def extract_zip(source: str | Path | bytes | BinaryIO, dest: str | Path, *, max_members: int = MAX_ZIP_MEMBERS,
                max_total_bytes: int = MAX_ZIP_TOTAL_BYTES, max_ratio: float = MAX_ZIP_RATIO) -> Path:
    """Extract a zip of images into ``dest`` safely and return ``dest``.

    Every member is checked before anything is written: ``ValueError`` for ``..`` components, absolute
    paths or drive letters, symbolic links, more than ``max_members`` members, more than
    ``max_total_bytes`` uncompressed, or a member compressed more than ``max_ratio``:1 (zip bombs).
    ``__MACOSX/``, ``._*`` and ``.DS_Store`` are skipped. The archive is unpacked in a staging folder
    beside ``dest`` and moved into place only when complete; if it holds a single top-level folder (the
    usual "zip of a folder"), that folder's content becomes ``dest``. ``dest`` must not exist or be empty.
    """
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ValueError(f"the target folder {dest} already exists and is not empty")
    if isinstance(source, (bytes, bytearray)):
        import io

        source = io.BytesIO(source)
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"not a readable zip archive: {exc}") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > max_members:
            raise ValueError(f"the archive has {len(infos)} members; the limit is {max_members}")
        members: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
        total = 0
        for info in infos:
            parts = _safe_member_parts(info.filename)
            if _is_link(info):
                raise ValueError(f"unsafe zip member {info.filename!r}: symbolic link")
            if not parts or _ignored_member(parts):
                continue
            if info.flag_bits & 0x1:
                raise ValueError(f"zip member {info.filename!r} is encrypted")
            total += info.file_size
            if total > max_total_bytes:
                raise ValueError(f"the archive expands to more than {max_total_bytes // 2**20} MB")
            if info.file_size > _RATIO_CHECK_FROM and info.file_size > max_ratio * max(info.compress_size, 1):
                raise ValueError(f"zip member {info.filename!r} is compressed "
                                 f"{info.file_size / max(info.compress_size, 1):.0f}:1 (a zip bomb?)")
            members.append((info, parts))
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
        try:
            root = staging.resolve()
            written = 0
            for info, parts in members:
                target = staging.joinpath(*parts)
                # Defence in depth: the name checks above already exclude this.
                if not target.resolve().is_relative_to(root):
                    raise ValueError(f"unsafe zip member {info.filename!r}: resolves outside the target")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "xb") as out:
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        # Declared sizes can lie; count what really comes out.
                        if written > max_total_bytes:
                            raise ValueError(f"the archive expands to more than {max_total_bytes // 2**20} MB")
                        out.write(chunk)
            top = [p for p in staging.iterdir()]
            content = top[0] if len(top) == 1 and top[0].is_dir() else staging
            if dest.exists():
                dest.rmdir()
            os.replace(content, dest)
        except zipfile.BadZipFile as exc:
            raise ValueError(f"the archive is corrupt: {exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return dest
