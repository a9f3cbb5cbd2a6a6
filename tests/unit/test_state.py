"""The state directory (pyruntime.state): container ids, state.json, status derivation."""

import os

import pytest

from pyruntime.errors import ContainerExists, ContainerNotFound, RuntimeUserError
from pyruntime.state import (
    MAX_ID_LENGTH,
    ContainerDir,
    ContainerState,
    check_id,
    is_valid_id,
    oci_state,
    process_start_time,
    status_of,
)


@pytest.mark.parametrize("good", ["abc", "a-b_c.d+e", "0123", "x" * 200])
def test_valid_ids(good):
    assert check_id(good) == good


@pytest.mark.parametrize("bad", ["", ".", "..", "../x", "a/b", "a b", "a\nb", "abc\n", "é"])
def test_invalid_ids(bad):
    with pytest.raises(RuntimeUserError, match="invalid container id"):
        check_id(bad)


def test_state_dir_roundtrip_and_status(tmp_path):
    cdir = ContainerDir(str(tmp_path), "c1")
    cdir.make()
    with pytest.raises(ContainerExists):
        ContainerDir(str(tmp_path), "c1").make()
    me = os.getpid()
    state = ContainerState(id="c1", bundle="/b", config={"ociVersion": "1.2.0", "annotations": {"a": "b"}},
                           pid=me, pid_start_time=process_start_time(me), creating=False)
    cdir.save(state)
    loaded = cdir.load()
    assert loaded.to_dict() == state.to_dict()
    cdir.make_fifo()
    assert status_of(cdir, loaded) == "created"
    os.unlink(cdir.fifo_path)
    assert status_of(cdir, loaded) == "running"
    # The same pid with another start time is a different process: the container stopped.
    loaded.pid_start_time += 1
    assert status_of(cdir, loaded) == "stopped"
    doc = oci_state(loaded, "stopped")
    assert doc["pid"] == 0 and doc["annotations"] == {"a": "b"} and doc["rootfs"] == "/b/rootfs"
    cdir.remove()
    with pytest.raises(ContainerNotFound):
        ContainerDir(str(tmp_path), "c1").lock()


def test_creating_status(tmp_path):
    cdir = ContainerDir(str(tmp_path), "c2")
    cdir.make()
    state = ContainerState(id="c2", bundle="/b", config={})
    assert status_of(cdir, state) == "creating"  # no init yet
    state.pid, state.pid_start_time = 2**22 + 7, 1  # an init that died during create
    assert status_of(cdir, state) == "stopped"


def test_corrupt_state_is_a_clear_error(tmp_path):
    cdir = ContainerDir(str(tmp_path), "c3")
    cdir.make()
    with open(os.path.join(cdir.path, "state.json"), "w") as f:
        f.write("{")
    with pytest.raises(RuntimeUserError, match="corrupt"):
        cdir.load()


def test_ids_longer_than_a_file_name_are_invalid():
    assert is_valid_id("a" * MAX_ID_LENGTH)
    assert not is_valid_id("a" * (MAX_ID_LENGTH + 1))
