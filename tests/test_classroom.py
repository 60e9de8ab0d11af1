"""explorer.core.classroom: class codes, lecturer-only publishing, expiry, and a shared folder for replicas."""
import json
import threading

import pytest

from explorer.core import ClassroomError, ClassroomStore, normalise_code


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_lecturer_publishes_followers_read():
    store = ClassroomStore()
    code, token = store.start({"page": "home", "query": {}})
    assert len(code) == 4 and code.isalnum() and code.isupper()
    assert store.read(code).version == 0
    assert store.publish(code, token, {"page": "gradcam", "query": {"layer": "features.28"}}) == 1
    view = store.read(code.lower())  # students type any case
    assert view.state == {"page": "gradcam", "query": {"layer": "features.28"}} and view.version == 1


def test_only_the_token_publishes_or_ends():
    store = ClassroomStore()
    code, token = store.start()
    with pytest.raises(ClassroomError):
        store.publish(code, "guess", {"page": "home"})
    with pytest.raises(ClassroomError):
        store.end(code, "guess")
    assert store.read(code).version == 0
    store.end(code, token)
    assert store.read(code) is None


def test_idle_class_expires():
    clock = Clock()
    store = ClassroomStore(idle_seconds=60, clock=clock)
    code, token = store.start()
    clock.now += 59
    store.publish(code, token, {"page": "home"})  # a publish keeps it alive
    clock.now += 59
    assert store.read(code) is not None
    clock.now += 2
    assert store.read(code) is None


def test_state_too_big_is_refused():
    store = ClassroomStore()
    code, token = store.start()
    with pytest.raises(ClassroomError):
        store.publish(code, token, {"page": "home", "query": {"x": "a" * 5000}})


def test_replicas_share_a_folder(tmp_path):
    lecturer_side, student_side = ClassroomStore(tmp_path), ClassroomStore(tmp_path)
    code, token = lecturer_side.start({"page": "home"})
    lecturer_side.publish(code, token, {"page": "feature_maps", "query": {"layer": "conv1"}})
    assert student_side.read(code).state["page"] == "feature_maps"
    record = json.loads((tmp_path / "classes" / f"{code}.json").read_text())
    assert token not in json.dumps(record)  # only the token's hash is stored
    assert [p.name for p in (tmp_path / "classes").iterdir()] == [f"{code}.json"]  # no temporary left
    student_side.end(code, token)  # the token works on any replica
    assert lecturer_side.read(code) is None


def test_concurrent_publishes_count_every_version():
    store = ClassroomStore()
    code, token = store.start()
    threads = [threading.Thread(target=lambda: [store.publish(code, token, {"n": i}) for i in range(50)])
               for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert store.read(code).version == 200


def test_codes():
    assert normalise_code(" ab 12 ") == "AB12"
    assert normalise_code("ab-12") is None and normalise_code("") is None and normalise_code("abcde") is None


def test_version_is_what_followers_poll():
    clock = Clock()
    store = ClassroomStore(idle_seconds=60, clock=clock)
    code, token = store.start()
    assert store.version(code) == 0 and store.version(code.lower()) == 0
    store.publish(code, token, {"page": "gradcam"})
    assert store.version(code) == 1
    assert store.version("ZZZZ") is None and store.version("../x") is None
    clock.now += 61
    assert store.version(code) is None  # expired


def test_shared_folder_poll_reads_the_file_only_after_a_publish(tmp_path, monkeypatch):
    from pathlib import Path

    lecturer_side, student_side = ClassroomStore(tmp_path), ClassroomStore(tmp_path)
    code, token = lecturer_side.start({"page": "home"})
    reads = []
    original = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: reads.append(self.name) or original(self, *a, **k))
    assert [student_side.version(code) for _ in range(20)] == [0] * 20
    assert len(reads) == 1  # one parse, then one os.stat per poll
    lecturer_side.publish(code, token, {"page": "feature_maps"})  # another replica writes the file
    reads.clear()
    assert student_side.version(code) == 1 and student_side.read(code).state == {"page": "feature_maps"}
    assert len(reads) == 1
    lecturer_side.end(code, token)
    assert student_side.version(code) is None


def test_a_class_whose_lecturer_left_ends_and_a_heartbeat_keeps_it(tmp_path):
    """The lecturer's tab sends a heartbeat once a minute (ui.links); without one for LECTURER_GONE_SECONDS the class
    ends (a reload or a closed tab) — for followers on another replica too — instead of staying frozen for hours."""
    from explorer.core import LECTURER_GONE_SECONDS, LECTURER_HEARTBEAT_SECONDS

    assert LECTURER_HEARTBEAT_SECONDS * 3 <= LECTURER_GONE_SECONDS  # two missed beats are not yet "gone"
    clock = Clock()
    lecturer = ClassroomStore(tmp_path, clock=clock, lecturer_gone_seconds=300)
    follower = ClassroomStore(tmp_path, clock=clock, lecturer_gone_seconds=300)
    code, token = lecturer.start({"page": "home"})
    for _ in range(10):  # ten minutes without a change, the lecturer's tab still there
        clock.now += 60
        lecturer.heartbeat(code, token)
    assert follower.version(code) == 0 and follower.read(code).state == {"page": "home"}
    clock.now += 299
    assert follower.version(code) == 0
    clock.now += 2  # no heartbeat for 301 s: the lecturer left
    assert follower.version(code) is None and follower.read(code) is None
    with pytest.raises(ClassroomError):
        lecturer.heartbeat(code, token)
    code2, token2 = lecturer.start()
    with pytest.raises(ClassroomError):
        lecturer.heartbeat(code2, "not the token")
