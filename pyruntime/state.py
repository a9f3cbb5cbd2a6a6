"""The state directory of each container: state.json, the lock, the exec FIFO, status derivation.

Layout under the runtime root (default /run/pyruntime):

    <root>/<id>/state.json   what create recorded (pid, bundle, config copy, cgroup, times)
    <root>/<id>/lock         flock()ed by every command acting on the container
    <root>/<id>/exec.fifo    exists from create until start: the init blocks opening it

The status is never stored as truth: it is derived from the recorded init process (alive, same
start time so a reused PID is not mistaken for it), the FIFO (created vs running) and the freezer
(paused), as runc does.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from pyruntime import jsonlite
from pyruntime.errors import ContainerExists, ContainerNotFound, RuntimeUserError

DEFAULT_ROOT = "/run/pyruntime"    # root's; rootless.default_state_root() picks per caller
STATE_FILE = "state.json"
LOCK_FILE = "lock"
EXEC_FIFO = "exec.fifo"

# Same rule as runc: a container id is a file name and must not be able to climb out of root.
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")

CREATING, CREATED, RUNNING, PAUSED, STOPPED = "creating", "created", "running", "paused", "stopped"


# The id names a directory (and a cgroup, a netns): one file name, at most 255 bytes.
MAX_ID_LENGTH = 255


def is_valid_id(name: str) -> bool:
    return (bool(name) and len(name) <= MAX_ID_LENGTH and _ID_CHARS.issuperset(name)
            and name not in (".", ".."))


def check_id(container_id: str) -> str:
    if len(container_id) > MAX_ID_LENGTH:
        raise RuntimeUserError(f"invalid container id: {len(container_id)} characters long, "
                               f"at most {MAX_ID_LENGTH} are allowed")
    if not is_valid_id(container_id):
        raise RuntimeUserError(
            f"invalid container id {container_id!r}: use letters, digits, '_', '+', '-' and '.'"
        )
    return container_id


def check_root(root: str) -> None:
    """--root must be a directory (it is made if missing)."""
    if os.path.exists(root) and not os.path.isdir(root):
        raise RuntimeUserError(f"--root {root} is not a directory")


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks), or None if the pid is gone or
    is a zombie, which counts as gone: its program has exited."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


class ContainerState:
    """What state.json holds. `config` is the config.json as it was at create time."""

    def __init__(self, id: str, bundle: str, config: dict, pid: int = 0, pid_start_time: int = 0,
                 created: str = "", owner: str = "", creating: bool = True,
                 cgroup: dict | None = None, extra: dict | None = None):
        self.id = id
        self.bundle = bundle
        self.config = config
        self.pid = pid
        self.pid_start_time = pid_start_time
        self.created = created
        self.owner = owner
        self.creating = creating
        self.cgroup = cgroup or {}
        self.extra = extra or {}

    @property
    def annotations(self) -> dict[str, str]:
        return self.config.get("annotations") or {}

    def to_dict(self) -> dict:
        return {
            "id": self.id, "bundle": self.bundle, "pid": self.pid,
            "pid_start_time": self.pid_start_time, "created": self.created, "owner": self.owner,
            "creating": self.creating, "cgroup": self.cgroup, "extra": self.extra,
            "config": self.config,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ContainerState":
        return cls(
            id=d["id"], bundle=d["bundle"], config=d.get("config") or {}, pid=d.get("pid", 0),
            pid_start_time=d.get("pid_start_time", 0), created=d.get("created", ""),
            owner=d.get("owner", ""), creating=d.get("creating", False),
            cgroup=d.get("cgroup") or {}, extra=d.get("extra") or {},
        )


class ContainerDir:
    """The state directory of one container, and the lock that serializes commands on it."""

    def __init__(self, root: str, container_id: str):
        self.root = root
        self.id = check_id(container_id)
        self.path = os.path.join(root, container_id)
        self._lock_fd: int | None = None

    # -- existence -------------------------------------------------------------------------
    def make(self) -> None:
        """Create the directory; an existing one means the id is taken."""
        from pyruntime.rootless import check_private_root

        check_root(self.root)
        # root's state may be traversed (not listed) by others; anyone else's is private
        try:
            os.makedirs(self.root, mode=0o711 if os.geteuid() == 0 else 0o700, exist_ok=True)
        except OSError as e:
            raise RuntimeUserError(f"--root {self.root}: cannot create it: {e.strerror}") from None
        check_private_root(self.root)
        try:
            # 0711: an init that already switched to another (mapped) user still reaches
            # exec.fifo through the fd it holds; nobody else can reach this directory at all
            # when the root above it is private
            os.mkdir(self.path, 0o711)
        except FileExistsError:
            raise ContainerExists(self.id) from None
        except PermissionError:
            raise RuntimeUserError(f"--root {self.root}: permission denied") from None

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def remove(self) -> None:
        for name in (EXEC_FIFO, STATE_FILE, STATE_FILE + ".tmp", LOCK_FILE):
            try:
                os.unlink(os.path.join(self.path, name))
            except FileNotFoundError:
                pass
        for name in os.listdir(self.path) if os.path.isdir(self.path) else ():
            p = os.path.join(self.path, name)
            if os.path.isdir(p) and not os.path.islink(p):
                import shutil

                shutil.rmtree(p, ignore_errors=True)
            else:
                os.unlink(p)
        try:
            os.rmdir(self.path)
        except FileNotFoundError:
            pass

    # -- locking ---------------------------------------------------------------------------
    def lock(self, shared: bool = False) -> "ContainerDir":
        try:
            fd = os.open(os.path.join(self.path, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            raise ContainerNotFound(self.id) from None
        except NotADirectoryError:
            check_root(self.root)
            raise ContainerNotFound(self.id) from None
        except PermissionError:
            # another user's container (root's state directories are 0711, files 0600)
            raise RuntimeUserError(f"container {self.id!r}: permission denied") from None
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        self._lock_fd = fd
        # The container may have been deleted while we waited for the lock.
        if not os.path.isdir(self.path):
            self.unlock()
            raise ContainerNotFound(self.id)
        return self

    @property
    def lock_fd(self) -> int | None:
        return self._lock_fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "ContainerDir":
        return self

    def __exit__(self, *exc) -> None:
        self.unlock()

    # -- state.json ------------------------------------------------------------------------
    def save(self, state: ContainerState) -> None:
        """Write state.json atomically: readers see the old or the new file, never half."""
        tmp = os.path.join(self.path, STATE_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(jsonlite.dumps_compact(state.to_dict()))
        os.rename(tmp, os.path.join(self.path, STATE_FILE))

    def load(self) -> ContainerState:
        try:
            with open(os.path.join(self.path, STATE_FILE)) as f:
                return ContainerState.from_dict(jsonlite.loads(f.read()))
        except FileNotFoundError:
            raise ContainerNotFound(self.id) from None
        except (ValueError, KeyError, TypeError, AttributeError) as e:  # bad JSON, or the wrong shape
            raise RuntimeUserError(f"container {self.id!r}: state.json is corrupt ({e})") from None

    # -- exec FIFO -------------------------------------------------------------------------
    @property
    def fifo_path(self) -> str:
        return os.path.join(self.path, EXEC_FIFO)

    def make_fifo(self) -> None:
        old = os.umask(0)
        try:
            # World-writable so that an init that already switched to an unprivileged user can
            # still open it; only root can read it, and reading is what releases the init.
            os.mkfifo(self.fifo_path, 0o622)
        finally:
            os.umask(old)

    def has_fifo(self) -> bool:
        return os.path.exists(self.fifo_path)


def status_of(cdir: ContainerDir, state: ContainerState) -> str:
    """Derive the status from the kernel, never from a stored field alone."""
    alive = state.pid > 0 and process_start_time(state.pid) == state.pid_start_time
    if state.creating:
        return CREATING if alive or state.pid == 0 else STOPPED
    if not alive:
        return STOPPED
    if state.cgroup and _cgroup_frozen(state.cgroup):
        return PAUSED
    return CREATED if cdir.has_fifo() else RUNNING


def _cgroup_frozen(cgroup: dict) -> bool:
    from pyruntime import cgroups

    return cgroups.saved_is_frozen(cgroup)


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        check_root(root)
        raise
    except PermissionError:
        raise RuntimeUserError(f"--root {root}: permission denied") from None
    return sorted(n for n in names if is_valid_id(n) and os.path.isfile(os.path.join(root, n, STATE_FILE)))


def oci_state(state: ContainerState, status: str) -> dict:
    """The state document of the runtime-spec (plus runc's `created`, `owner`, `rootfs`)."""
    doc: dict = {
        "ociVersion": state.config.get("ociVersion", "1.2.0"),
        "id": state.id,
        "status": status,
        "bundle": state.bundle,
    }
    if status in (CREATING, CREATED, RUNNING, PAUSED) and state.pid:
        doc["pid"] = state.pid
    else:
        doc["pid"] = 0
    root = (state.config.get("root") or {}).get("path", "rootfs")
    doc["rootfs"] = root if os.path.isabs(root) else os.path.join(state.bundle, root)
    doc["created"] = state.created
    doc["owner"] = state.owner
    if state.annotations:
        doc["annotations"] = state.annotations
    return doc


def utc_now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def ignore_missing(func, *args) -> None:
    try:
        func(*args)
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.ESRCH):
            raise
