"""Safe extraction of an uploaded zip of images (:func:`extract_zip`), and deletion of old extractions
(:func:`clean_extractions`: a time to live and a bound on their total size).

Every member is checked before anything is written: archives that would write outside their folder,
links, encrypted members and zip bombs are refused with a ``ValueError`` that says why.
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Sequence


MAX_ZIP_MEMBERS = 20_000
# Uncompressed bytes of one archive (``EXPLORER_ZIP_MAX_MB`` changes it): uploads are at most 25 MB and
# photos barely compress, so 512 MB is generous; 2 GB once let a 2.1 MB zip write 1.9 GB.
MAX_ZIP_TOTAL_BYTES = 512 * 1024**2
ZIP_MAX_ENV = "EXPLORER_ZIP_MAX_MB"
MAX_ZIP_RATIO = 100  # uncompressed/compressed; photos barely compress, zip bombs compress ~1000×
_RATIO_CHECK_FROM = 1024 * 1024  # tiny text files may compress well and harm nobody
# The whole archive's ratio is checked from here on, whatever its members' sizes (members of exactly
# 1 MiB once passed the per-member check).
_ARCHIVE_RATIO_CHECK_FROM = 16 * 1024 * 1024
# Linux allows 255 bytes per name and 4096 per path; leave room for the folder the archive lands in.
MAX_NAME_BYTES = 200
MAX_PATH_CHARS = 1024
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


class ZipTargetExistsError(ValueError):
    """The target folder appeared while this archive was being extracted (another upload of it won)."""


def zip_total_limit() -> int:
    """``EXPLORER_ZIP_MAX_MB`` (megabytes) if set, else :data:`MAX_ZIP_TOTAL_BYTES`."""
    text = os.environ.get(ZIP_MAX_ENV, "").strip()
    if not text:
        return MAX_ZIP_TOTAL_BYTES
    try:
        return int(float(text) * 2**20)
    except ValueError:
        raise ValueError(f"{ZIP_MAX_ENV} must be a number of megabytes, got {text!r}") from None


def _check_layout(members: list[tuple[zipfile.ZipInfo, tuple[str, ...]]]) -> None:
    """Names that the file system would refuse or that collide, found before anything is written."""
    files: set[tuple[str, ...]] = set()
    folders: set[tuple[str, ...]] = set()
    for info, parts in members:
        if len("/".join(parts)) > MAX_PATH_CHARS:
            raise ValueError(f"zip member {info.filename[:60]!r}… has a path longer than {MAX_PATH_CHARS} characters")
        for part in parts:
            if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
                raise ValueError(f"zip member {info.filename[:60]!r}… has a name longer than {MAX_NAME_BYTES} bytes")
        for depth in range(1, len(parts)):
            folders.add(parts[:depth])
        if info.is_dir():
            folders.add(parts)
        elif parts in files:
            raise ValueError(f"zip member {info.filename!r} appears twice in the archive")
        else:
            files.add(parts)
    clash = files & folders
    if clash:
        raise ValueError(f"zip member {'/'.join(sorted(clash)[0])!r} is both a file and a folder in the archive")


def _is_link(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return stat.S_ISLNK(mode)


def extract_zip(source: str | Path | bytes | BinaryIO, dest: str | Path, *, max_members: int = MAX_ZIP_MEMBERS,
                max_total_bytes: int | None = None, max_ratio: float = MAX_ZIP_RATIO) -> Path:
    """Extract a zip of images into ``dest`` safely and return ``dest``.

    Every member is checked before anything is written: ``ValueError`` for ``..`` components, absolute
    paths or drive letters, symbolic links, more than ``max_members`` members, more than
    ``max_total_bytes`` uncompressed (default :func:`zip_total_limit`), a member or the whole archive
    compressed more than ``max_ratio``:1 (zip bombs), duplicate names, a name that is both a file and a
    folder, names or paths too long for the file system. Any other file-system error is a ``ValueError``
    too; :class:`ZipTargetExistsError` when ``dest`` was filled by someone else meanwhile.
    ``__MACOSX/``, ``._*`` and ``.DS_Store`` are skipped. The archive is unpacked in a staging folder
    beside ``dest`` and moved into place only when complete; if it holds a single top-level folder (the
    usual "zip of a folder"), that folder's content becomes ``dest``. ``dest`` must not exist or be empty.
    """
    dest = Path(dest)
    if max_total_bytes is None:
        max_total_bytes = zip_total_limit()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ValueError(f"the target folder {dest} already exists and is not empty")
    with _open_archive(source) as archive:
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
        compressed = sum(info.compress_size for info, _parts in members)
        if total > _ARCHIVE_RATIO_CHECK_FROM and total > max_ratio * max(compressed, 1):
            raise ValueError(f"the archive is compressed {total / max(compressed, 1):.0f}:1 as a whole (a zip bomb?)")
        _check_layout(members)
        strip = _unwrapped_depth([(parts, info.is_dir()) for info, parts in members])
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            # A fresh, uniquely named folder per extraction: two uploads at once never share one.
            staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
        except OSError as exc:
            raise ValueError(f"the archive could not be extracted: {exc.strerror or exc}") from exc
        try:
            root = staging.resolve()
            written = 0
            for info, parts in members:
                if not parts[strip:]:
                    continue  # the single top-level folder itself: its content becomes ``dest``
                target = staging.joinpath(*parts[strip:])
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
            try:
                if dest.exists():
                    dest.rmdir()
                os.replace(staging, dest)
            except OSError as exc:
                if dest.is_dir() and any(dest.iterdir()):  # the same archive, extracted at once elsewhere
                    raise ZipTargetExistsError(f"the target folder {dest.name} was filled meanwhile") from exc
                raise
        except (zipfile.BadZipFile, EOFError) as exc:
            raise ValueError(f"the archive is corrupt: {exc}") from exc
        except OSError as exc:  # disk full, a name the file system refuses...: one clear message
            raise ValueError(f"the archive could not be extracted: {exc.strerror or exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return dest


def _open_archive(source: str | Path | bytes | BinaryIO) -> zipfile.ZipFile:
    if isinstance(source, (bytes, bytearray)):
        import io

        source = io.BytesIO(source)
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"not a readable zip archive: {exc}") from exc


def _unwrapped_depth(members: list[tuple[tuple[str, ...], bool]]) -> int:
    """1 when every (parts, is a folder) member lies in one top-level folder (the usual "zip of a folder"), whose
    content then becomes the target; else 0. One rule for :func:`extract_zip` and :func:`zip_listing`."""
    tops = {parts[0] for parts, _is_dir in members}
    top_is_file = any(len(parts) == 1 and not is_dir for parts, is_dir in members)
    return 1 if len(tops) == 1 and not top_is_file else 0


def zip_listing(source: str | Path | bytes | BinaryIO) -> tuple[dict[str, int], set[str]]:
    """What :func:`extract_zip` writes for this archive, read from its directory alone: (file → size in bytes,
    folders), as POSIX paths relative to the target, after the same skipping (``__MACOSX/``, ``._*``...) and
    unwrapping of a single top-level folder. ``ValueError`` for an unreadable archive or an unsafe name."""
    with _open_archive(source) as archive:
        members = []
        for info in archive.infolist():
            parts = _safe_member_parts(info.filename)
            if parts and not _ignored_member(parts):
                members.append((parts, info.is_dir(), info.file_size))
    strip = _unwrapped_depth([(parts, is_dir) for parts, is_dir, _size in members])
    files: dict[str, int] = {}
    folders: set[str] = set()
    for parts, is_dir, size in members:
        parts = parts[strip:]
        if not parts:
            continue
        folders.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
        if is_dir:
            folders.add("/".join(parts))
        else:
            files["/".join(parts)] = size
    return files, folders


def extraction_complete(folder: str | Path, source: str | Path | bytes | BinaryIO) -> bool:
    """Whether ``folder`` holds exactly what :func:`extract_zip` writes for ``source`` (every file at its size,
    every folder, nothing else). An extraction reused by its digest must pass: a clean-up or a person may have
    deleted part of it, and a partial folder would train on fewer classes without a word."""
    root = Path(folder)
    if not root.is_dir() or root.is_symlink():
        return False
    expected_files, expected_folders = zip_listing(source)
    files: dict[str, int] = {}
    folders: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath).relative_to(root)
        for name in dirnames:
            folders.add((here / name).as_posix())
        for name in filenames:
            try:
                files[(here / name).as_posix()] = os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                return False
    return files == expected_files and folders == expected_folders


# --- old extractions are deleted ---------------------------------------------------------------------------------
UPLOADS_TTL_ENV = "EXPLORER_UPLOADS_TTL_H"
DEFAULT_UPLOADS_TTL_H = 6.0  # a class day's session; a folder in use is touched on every use (kept)
UPLOADS_MAX_ENV = "EXPLORER_UPLOADS_MAX_MB"
DEFAULT_UPLOADS_MAX_MB = 4096  # extracted uploads of every session together


def _env_positive(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    try:
        value = float(text) if text else default
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {text!r}")
    return value


def _tree_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder, onerror=lambda _exc: None):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def clean_extractions(uploads_root: str | Path, *, max_age_s: float | None = None,
                      max_total_bytes: int | None = None, keep: Sequence[str | Path] = (),
                      now: float | None = None) -> list[Path]:
    """Delete old extracted uploads under ``uploads_root`` (``<root>/<owner>/<extraction>/``: the owner is a browser
    session, or ``explorer.data.datasets.LIBRARY_UPLOADS`` for archives ``load_dataset`` extracts); every extraction
    (and leftover staging folder) last modified more than ``max_age_s`` ago (default ``EXPLORER_UPLOADS_TTL_H``
    hours, 6), then the oldest ones until all of them together are within ``max_total_bytes`` (default
    ``EXPLORER_UPLOADS_MAX_MB``, 4096 MB). ``keep``: folders never deleted (the one just extracted). Session folders
    left empty are removed. Returns the extractions deleted; a folder that cannot be read or deleted is skipped.
    """
    root = Path(uploads_root)
    if max_age_s is None:
        max_age_s = _env_positive(UPLOADS_TTL_ENV, DEFAULT_UPLOADS_TTL_H) * 3600
    if max_total_bytes is None:
        max_total_bytes = int(_env_positive(UPLOADS_MAX_ENV, DEFAULT_UPLOADS_MAX_MB) * 2**20)
    now = time.time() if now is None else now
    kept = {Path(p).resolve() for p in keep}
    try:
        sessions = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []
    extractions: list[tuple[float, Path]] = []
    for session in sessions:
        try:
            extractions += [(p.lstat().st_mtime, p) for p in session.iterdir() if p.is_dir() and not p.is_symlink()]
        except OSError:
            continue
    deleted: list[Path] = []

    def delete(folder: Path) -> bool:
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists():
            return False
        deleted.append(folder)
        return True

    survivors: list[tuple[float, Path, int]] = []
    for mtime, folder in sorted(extractions):
        if folder.resolve() not in kept and now - mtime > max_age_s and delete(folder):
            continue
        survivors.append((mtime, folder, _tree_bytes(folder)))
    total = sum(size for _m, _f, size in survivors)
    for _mtime, folder, size in survivors:  # oldest first
        if total <= max_total_bytes:
            break
        if folder.resolve() not in kept and delete(folder):
            total -= size
    for session in sessions:
        try:
            session.rmdir()  # only when empty
        except OSError:
            pass
    return deleted
