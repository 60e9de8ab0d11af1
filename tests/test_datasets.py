"""explorer.data.datasets: the 7:2:1 split, safe zip extraction, synthetic shapes, torchvision loading offline."""
from __future__ import annotations

import io
import os
import socket
import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from explorer import data as D
from explorer.data import splits as S
from explorer.data import torchvision_sets as TV
# --- split counts -------------------------------------------------------------------------------------------


def test_split_counts_homework_numbers():
    # The course homework: int(n*0.7), int(n*0.2), int(n*0.1) loses files (372 of 373 dolphins placed).
    assert [int(373 * r) for r in (0.7, 0.2, 0.1)] == [261, 74, 37]
    # Largest remainder, worked by hand: 261.1/74.6/37.3 -> the one left-over dolphin goes to valid (.6).
    assert S.split_counts(373) == (261, 75, 37)
    # 341.6/97.6/48.8 -> two left over: test (.8), then the .6 tie goes to the earlier split (train).
    assert S.split_counts(488) == (342, 97, 49)
    # 315.7/90.2/45.1 -> one left over: train (.7).
    assert S.split_counts(451) == (316, 90, 45)


@pytest.mark.parametrize("n", range(0, 40))
def test_split_counts_cover_every_file_and_stay_within_one_of_the_ratio(n):
    counts = S.split_counts(n, (0.7, 0.2, 0.1))
    assert sum(counts) == n
    for count, ratio in zip(counts, (7, 2, 1)):
        assert abs(count * 10 - n * ratio) < 10  # |count - n·ratio| < 1


def test_split_counts_accept_integer_ratios_and_reject_nonsense():
    assert S.split_counts(10, (7, 2, 1)) == (7, 2, 1)
    assert S.split_counts(3, (0.7, 0.2, 0.1)) == (2, 1, 0)  # 2.1/0.6/0.3: the left-over file goes to valid
    with pytest.raises(ValueError):
        S.split_counts(10, (0, 0, 0))
    with pytest.raises(ValueError):
        S.split_counts(-1)


# --- split_image_folder ---------------------------------------------------------------------------------------


def _png(colour: tuple[int, int, int] = (200, 30, 30), size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def sea(tmp_path: Path) -> Path:
    """A small version of the homework's photo folder: 37 dolphins, 48 sharks, 45 whales."""
    root = tmp_path / "original"
    for name, n in (("dolphin", 37), ("shark", 48), ("whale", 45)):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(n):
            (folder / f"{name}_{i:03d}.png").write_bytes(_png((i * 5 % 256, 40, 90)))
    return root


def test_split_is_stratified_disjoint_complete_and_counted_as_documented(sea):
    result = D.split_image_folder(sea, ratios=(0.7, 0.2, 0.1), seed=0)
    # By hand: 37 -> 25.9/7.4/3.7 -> 25/7/3 + train(.9), test(.7) = 26/7/4;
    # 48 -> 33.6/9.6/4.8 -> 33/9/4 + test(.8), train(.6 tie, earlier) = 34/9/5; 45 -> 31.5/9/4.5 -> 32/9/4.
    expected = {"dolphin": (26, 7, 4), "shark": (34, 9, 5), "whale": (32, 9, 4)}
    for name, counts in expected.items():
        assert tuple(len(result[s][name]) for s in ("train", "valid", "test")) == counts
        everything = sorted((sea / name).iterdir())
        parts = [set(result[s][name]) for s in ("train", "valid", "test")]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert sorted(parts[0] | parts[1] | parts[2]) == everything
        # stratified: no file of this class is filed under another class
        assert all(p.parent.name == name for part in parts for p in part)
    assert result.counts()["valid"] == {"dolphin": 7, "shark": 9, "whale": 9}
    assert result.empty_classes == [] and result.skipped == []


def test_split_is_reproducible_by_seed(sea):
    a = D.split_image_folder(sea, seed=3)
    b = D.split_image_folder(sea, seed=3)
    c = D.split_image_folder(sea, seed=4)
    assert a == b
    assert a["train"]["shark"] != c["train"]["shark"]  # another seed, another shuffle
    assert {k: len(v) for k, v in a["test"].items()} == {k: len(v) for k, v in c["test"].items()}


def test_split_writes_folders_when_asked(sea, tmp_path):
    dst = tmp_path / "split"
    result = D.split_image_folder(sea, dst, seed=0)
    for split in ("train", "valid", "test"):
        for name, files in result[split].items():
            written = sorted(p.name for p in (dst / split / name).iterdir())
            assert written == sorted(p.name for p in files)
            assert (dst / split / name / files[0].name).read_bytes() == files[0].read_bytes()
    assert result.dst == dst
    assert len(list((sea / "dolphin").iterdir())) == 37  # copied, not moved
    with pytest.raises(ValueError):
        D.split_image_folder(sea, dst)  # not empty any more


def test_empty_classes_and_unreadable_images_are_reported_not_fatal(sea):
    (sea / "octopus").mkdir()
    (sea / "octopus" / "notes.txt").write_text("no images here")
    (sea / "whale" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    (sea / "whale" / "readme.md").write_text("ignored: not an image extension")
    result = D.split_image_folder(sea, seed=0)
    assert result.empty_classes == ["octopus"]
    assert [Path(s.path).name for s in result.skipped] == ["broken.png"]
    assert sum(len(result[s]["whale"]) for s in ("train", "valid", "test")) == 45
    assert result.classes == ["dolphin", "shark", "whale"]


def test_load_image_folder_decodes_at_the_model_size(sea):
    bundle = D.load_image_folder(sea, channels=3, size=16, seed=0)
    assert bundle.classes == ["dolphin", "shark", "whale"]
    assert bundle.train.images.shape == (26 + 34 + 32, 3, 16, 16)
    assert bundle.counts()["test"] == {"dolphin": 4, "shark": 5, "whale": 4}
    grey = D.load_image_folder(sea, channels=1, size=8, seed=0)
    assert grey.train.images.shape[1:] == (1, 8, 8)


def test_presplit_folder_is_used_as_it_is(sea, tmp_path):
    dst = tmp_path / "presplit"
    D.split_image_folder(sea, dst, seed=1)
    bundle = D.load_image_folder(dst, channels=3, size=8)
    assert bundle.counts()["valid"] == {"dolphin": 7, "shark": 9, "whale": 9}


# --- extract_zip ------------------------------------------------------------------------------------------------


def _zip(members: list[tuple[str | zipfile.ZipInfo, bytes]], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def _everything_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


def _symlink_member(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o120777 << 16)  # S_IFLNK | rwxrwxrwx, as `zip --symlinks` writes it
    info.create_system = 3
    return info


@pytest.mark.parametrize("members", [
    [("cats/a.png", b"ok"), ("../evil.txt", b"pwned")],
    [("cats/a.png", b"ok"), ("cats/../../evil.txt", b"pwned")],
    [("/tmp/evil.txt", b"pwned")],
    [("..\\evil.txt", b"pwned")],
    [("C:/evil.txt", b"pwned")],
], ids=["dotdot", "nested-dotdot", "absolute", "backslash-dotdot", "drive-letter"])
def test_traversal_and_absolute_members_are_refused_and_nothing_is_written(tmp_path, members):
    work = tmp_path / "work"
    work.mkdir()
    archive = work / "upload.zip"
    archive.write_bytes(_zip(members))
    before = _everything_under(tmp_path)
    with pytest.raises(ValueError, match="unsafe zip member"):
        D.extract_zip(archive, work / "dest")
    assert _everything_under(tmp_path) == before
    assert not Path("/tmp/evil.txt").exists() or Path("/tmp/evil.txt").read_bytes() != b"pwned"


def test_symlink_members_are_refused(tmp_path):
    data = _zip([("cats/a.png", _png()), (_symlink_member("cats/link.png", "/etc/passwd"), b"/etc/passwd")])
    before = _everything_under(tmp_path)
    with pytest.raises(ValueError, match="symbolic link"):
        D.extract_zip(data, tmp_path / "dest")
    assert _everything_under(tmp_path) == before


def test_zip_bombs_and_oversized_archives_are_refused(tmp_path):
    bomb = _zip([("cats/zeros.png", b"\0" * (4 * 1024 * 1024))])  # 4 MB of zeros compress ~1000:1
    assert len(bomb) < 64 * 1024
    with pytest.raises(ValueError, match="compressed"):
        D.extract_zip(bomb, tmp_path / "a")
    many = _zip([(f"cats/{i}.png", b"x") for i in range(6)])
    with pytest.raises(ValueError, match="members"):
        D.extract_zip(many, tmp_path / "b", max_members=5)
    big = _zip([("cats/a.png", os.urandom(5000)), ("dogs/b.png", os.urandom(5000))])
    with pytest.raises(ValueError, match="expands"):
        D.extract_zip(big, tmp_path / "c", max_total_bytes=8000)
    assert _everything_under(tmp_path) == set()


def test_lying_sizes_are_caught_while_extracting(tmp_path):
    data = bytearray(_zip([("cats/a.bin", os.urandom(3000))], compression=zipfile.ZIP_STORED))
    # Shrink the declared size in the central directory: the stream still holds 3000 bytes.
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.infolist()[0]
    central = bytes(data).rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 100)  # uncompressed size field
    with pytest.raises(ValueError):
        D.extract_zip(bytes(data), tmp_path / "dest", max_total_bytes=1000)
    assert not (tmp_path / "dest").exists()
    assert info.file_size == 3000


def test_macos_junk_is_ignored_and_a_single_top_folder_unwrapped(tmp_path):
    data = _zip([("photos/", b""), ("photos/cat/a.png", _png()), ("photos/dog/b.png", _png((0, 0, 200))),
                 ("__MACOSX/photos/cat/._a.png", b"junk"), ("photos/cat/._a.png", b"junk"),
                 ("photos/.DS_Store", b"junk")])
    dest = D.extract_zip(data, tmp_path / "dest")
    assert dest == tmp_path / "dest"
    assert _everything_under(dest) == {"cat", "cat/a.png", "dog", "dog/b.png"}
    assert [p.name for p in tmp_path.iterdir()] == ["dest"]  # no staging folder left behind
    bundle = D.load_image_folder(dest, channels=3, size=8, ratios=(1, 0, 0))
    assert bundle.classes == ["cat", "dog"]


def test_extract_refuses_a_non_empty_target_and_non_zips(tmp_path):
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "x").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        D.extract_zip(_zip([("a/b.png", b"1")]), tmp_path / "dest")
    with pytest.raises(ValueError, match="zip"):
        D.extract_zip(b"not a zip at all", tmp_path / "other")


# --- synthetic shapes -----------------------------------------------------------------------------------------


def test_shapes_are_deterministic_by_seed_and_fit_the_model():
    a = D.make_shapes(20, channels=1, size=28, seed=5)
    b = D.make_shapes(20, channels=1, size=28, seed=5)
    c = D.make_shapes(20, channels=1, size=28, seed=6)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert a.images.shape == (20, 1, 28, 28) and a.images.dtype == torch.uint8
    rgb = D.make_shapes(10, channels=3, size=64, seed=0)
    assert rgb.images.shape == (10, 3, 64, 64)
    assert torch.bincount(a.labels, minlength=5).tolist() == [4, 4, 4, 4, 4]  # balanced


def test_shapes_stand_out_from_their_background():
    # Every image has a clearly brighter or darker region (the shape) than its median (the background).
    data = D.make_shapes(50, channels=1, size=32, seed=0)
    x = data.images.float().view(50, -1)
    spread = x.quantile(0.98, dim=1) - x.quantile(0.02, dim=1)
    assert bool((spread > 60).all())


def test_load_shapes_splits_7_2_1_without_shared_images():
    bundle = D.load_shapes(channels=3, size=16, seed=0, samples=200)
    assert (len(bundle.train), len(bundle.valid), len(bundle.test)) == (140, 40, 20)
    assert bundle.classes == list(D.SHAPE_CLASSES)
    train = {bytes(img.numpy()) for img in bundle.train.images}
    assert not any(bytes(img.numpy()) in train for img in bundle.test.images)
    assert len(bundle.mean) == 3 and all(0 < s for s in bundle.std)


def test_fit_tensor_images_converts_like_pil():
    rgb = D.make_shapes(4, channels=3, size=16, seed=1).images
    grey = TV.fit_tensor_images(rgb, 1, 16)
    by_pil = np.stack([np.asarray(Image.fromarray(img.permute(1, 2, 0).numpy()).convert("L")) for img in rgb])
    assert np.abs(grey[:, 0].numpy().astype(int) - by_pil.astype(int)).max() <= 1
    back = TV.fit_tensor_images(grey, 3, 8)
    assert back.shape == (4, 3, 8, 8) and torch.equal(back[:, 0], back[:, 2])


# --- torchvision datasets -----------------------------------------------------------------------------------


def test_offline_torchvision_dataset_fails_fast_and_clearly(tmp_path, monkeypatch):
    monkeypatch.setattr(TV, "network_reachable", lambda urls, timeout=3.0: (False, "no route (test)"))
    with pytest.raises(TV.DatasetUnavailableError) as info:
        TV.load_torchvision("cifar10", channels=3, size=32, root=tmp_path)
    assert "CIFAR-10" in str(info.value) and "shapes" in str(info.value) and str(tmp_path) in str(info.value)
    assert info.value.dataset == "CIFAR-10"


def test_network_probe_gives_up_at_its_deadline(monkeypatch):
    def hang(*args, **kwargs):
        time.sleep(5)
        raise OSError("late")

    monkeypatch.setattr(socket, "create_connection", hang)
    ok, reason = TV.network_reachable(["https://example.invalid/x"], timeout=0.1)
    assert not ok and "no answer" in reason


def _write_idx(path: Path, array: np.ndarray) -> None:
    magic = 2051 if array.ndim == 3 else 2049
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_files_on_disk_load_without_network(tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_x, test_x = rng.integers(0, 256, (50, 28, 28)), rng.integers(0, 256, (20, 28, 28))
    train_y, test_y = np.arange(50) % 10, np.arange(20) % 10
    _write_idx(raw / "train-images-idx3-ubyte", train_x)
    _write_idx(raw / "train-labels-idx1-ubyte", train_y)
    _write_idx(raw / "t10k-images-idx3-ubyte", test_x)
    _write_idx(raw / "t10k-labels-idx1-ubyte", test_y)
    monkeypatch.setattr(TV, "network_reachable", lambda *a, **k: pytest.fail("must not touch the network"))
    bundle = TV.load_torchvision("mnist", channels=1, size=28, root=tmp_path, valid_fraction=0.2)
    assert bundle.classes == [str(d) for d in range(10)]
    assert (len(bundle.train), len(bundle.valid), len(bundle.test)) == (40, 10, 20)
    assert torch.equal(bundle.test.images[:, 0], torch.as_tensor(test_x, dtype=torch.uint8))
    assert not bundle.flip_ok  # a mirrored digit is not the same digit
    rgb = TV.load_torchvision("mnist", channels=3, size=32, root=tmp_path)
    assert rgb.test.images.shape == (20, 3, 32, 32)


def test_load_dataset_dispatch(tmp_path, sea):
    assert D.load_dataset("shapes", 1, 12, samples=30).input_shape == (1, 12, 12)
    assert D.load_dataset(str(sea), 3, 8).classes == ["dolphin", "shark", "whale"]
    with pytest.raises(ValueError, match="unknown dataset"):
        D.load_dataset(str(tmp_path / "nowhere"), 3, 8)
