"""Old extracted uploads are deleted (issue 14): a time to live, and a bound on their total size."""
from __future__ import annotations

import os
import time
from pathlib import Path

from explorer.data import clean_extractions

HOUR = 3600.0


def extraction(root: Path, session: str, name: str, size: int, age_s: float, now: float) -> Path:
    folder = root / session / name
    (folder / "cat").mkdir(parents=True)
    (folder / "cat" / "a.png").write_bytes(b"x" * size)
    os.utime(folder, (now - age_s, now - age_s))  # the extraction's age is its folder's mtime
    return folder


def test_extractions_older_than_the_time_to_live_are_deleted(tmp_path):
    now = time.time()
    old = extraction(tmp_path, "s1", "photos-aaa", 10, 7 * HOUR, now)
    fresh = extraction(tmp_path, "s1", "photos-bbb", 10, 1 * HOUR, now)
    other_old = extraction(tmp_path, "s2", "cats-ccc", 10, 30 * HOUR, now)
    staging = extraction(tmp_path, "s2", ".cats-ddd-k2j3", 10, 9 * HOUR, now)  # a crashed extraction's leftover
    deleted = clean_extractions(tmp_path, max_age_s=6 * HOUR, max_total_bytes=10**9, now=now)
    assert sorted(deleted) == sorted([old, other_old, staging])
    assert fresh.is_dir() and not old.exists() and not other_old.exists() and not staging.exists()
    assert not (tmp_path / "s2").exists()  # a session folder left empty goes too
    assert (tmp_path / "s1").is_dir()


def test_the_oldest_go_first_until_the_total_fits_and_the_new_one_is_kept(tmp_path):
    now = time.time()
    folders = [extraction(tmp_path, f"s{i % 2}", f"set-{i}", 1000, (5 - i) * 60, now) for i in range(5)]
    newest_kept = folders[0]  # the oldest by mtime, but the one just made by this session: never deleted
    deleted = clean_extractions(tmp_path, max_age_s=HOUR, max_total_bytes=2500, keep=[newest_kept], now=now)
    # 5 × 1000 bytes, 2500 allowed: the oldest not kept go first (1, 2, 3), leaving 2000 bytes.
    assert deleted == folders[1:4]
    assert [f for f in folders if f.exists()] == [newest_kept, folders[4]]


def test_a_missing_uploads_folder_is_nothing_to_do(tmp_path):
    assert clean_extractions(tmp_path / "nothing-here") == []


def test_defaults_come_from_the_environment(tmp_path, monkeypatch):
    now = time.time()
    old = extraction(tmp_path, "s1", "a", 10, 3 * HOUR, now)
    monkeypatch.setenv("EXPLORER_UPLOADS_TTL_H", "2")
    assert clean_extractions(tmp_path, now=now) == [old]
