"""The container's filesystem view, built inside its new mount namespace.

Order (as the runtime-spec and runc have it): make the host's mounts non-propagating, bind the
rootfs onto itself, perform `mounts` in order, create devices and /dev symlinks, then (after the
createContainer hooks) pivot_root, mask and read-only paths, and finally a read-only root.

Every destination is resolved inside the rootfs by `secure_join`, which follows symlinks as if
the rootfs were `/`, so a malicious image cannot make a mount land on the host.
"""

from __future__ import annotations

import errno
import os
import stat

from pyruntime import linux
from pyruntime.errors import RuntimeUserError

# option -> (flag, clears the flag instead of setting it)
MOUNT_OPTIONS: dict[str, tuple[int, bool]] = {
    "ro": (linux.MS_RDONLY, False), "rw": (linux.MS_RDONLY, True),
    "nosuid": (linux.MS_NOSUID, False), "suid": (linux.MS_NOSUID, True),
    "nodev": (linux.MS_NODEV, False), "dev": (linux.MS_NODEV, True),
    "noexec": (linux.MS_NOEXEC, False), "exec": (linux.MS_NOEXEC, True),
    "sync": (linux.MS_SYNCHRONOUS, False), "async": (linux.MS_SYNCHRONOUS, True),
    "dirsync": (linux.MS_DIRSYNC, False),
    "remount": (linux.MS_REMOUNT, False),
    "mand": (linux.MS_MANDLOCK, False), "nomand": (linux.MS_MANDLOCK, True),
    "noatime": (linux.MS_NOATIME, False), "atime": (linux.MS_NOATIME, True),
    "nodiratime": (linux.MS_NODIRATIME, False), "diratime": (linux.MS_NODIRATIME, True),
    "relatime": (linux.MS_RELATIME, False), "norelatime": (linux.MS_RELATIME, True),
    "strictatime": (linux.MS_STRICTATIME, False), "nostrictatime": (linux.MS_STRICTATIME, True),
    "nosymfollow": (linux.MS_NOSYMFOLLOW, False), "symfollow": (linux.MS_NOSYMFOLLOW, True),
    "bind": (linux.MS_BIND, False), "rbind": (linux.MS_BIND | linux.MS_REC, False),
}

PROPAGATION: dict[str, int] = {
    "private": linux.MS_PRIVATE, "rprivate": linux.MS_PRIVATE | linux.MS_REC,
    "shared": linux.MS_SHARED, "rshared": linux.MS_SHARED | linux.MS_REC,
    "slave": linux.MS_SLAVE, "rslave": linux.MS_SLAVE | linux.MS_REC,
    "unbindable": linux.MS_UNBINDABLE, "runbindable": linux.MS_UNBINDABLE | linux.MS_REC,
}

# Options that are instructions to the runtime rather than mount flags or fs data.
RUNTIME_OPTIONS = {"tmpcopyup", "notmpcopyup", "copy-symlink", "z", "Z", "U", "idmap", "ridmap"}

# statvfs f_flag bits -> mount flags: flags a bind remount must keep when they are locked
# (a mount inherited into a user namespace cannot lose nosuid/nodev/noexec/ro).
_STATVFS_LOCKED = {
    os.ST_RDONLY: linux.MS_RDONLY, os.ST_NOSUID: linux.MS_NOSUID, os.ST_NODEV: linux.MS_NODEV,
    os.ST_NOEXEC: linux.MS_NOEXEC, os.ST_NOATIME: linux.MS_NOATIME,
    os.ST_NODIRATIME: linux.MS_NODIRATIME, os.ST_RELATIME: linux.MS_RELATIME,
}

# The devices every container gets (runtime-spec "Default Devices").
DEFAULT_DEVICES = [
    {"path": "/dev/null", "type": "c", "major": 1, "minor": 3},
    {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5},
    {"path": "/dev/full", "type": "c", "major": 1, "minor": 7},
    {"path": "/dev/random", "type": "c", "major": 1, "minor": 8},
    {"path": "/dev/urandom", "type": "c", "major": 1, "minor": 9},
    {"path": "/dev/tty", "type": "c", "major": 5, "minor": 0},
]

DEV_SYMLINKS = [
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
]

MAX_SYMLINKS = 255


def parse_options(options: list[str]) -> tuple[int, list[int], list[str], set[str]]:
    """Split mount options into (flags, propagation flags, fs data, runtime extensions)."""
    flags = 0
    propagation: list[int] = []
    data: list[str] = []
    extensions: set[str] = set()
    for opt in options:
        if opt in MOUNT_OPTIONS:
            flag, clear = MOUNT_OPTIONS[opt]
            flags = flags & ~flag if clear else flags | flag
        elif opt in PROPAGATION:
            propagation.append(PROPAGATION[opt])
        elif opt in RUNTIME_OPTIONS:
            extensions.add(opt)
        else:
            data.append(opt)
    return flags, propagation, data, extensions


def secure_join(root: str, unsafe: str) -> str:
    """Resolve `unsafe` under `root` as if `root` were `/`: symlinks (absolute or relative) and
    `..` can never climb above it. Missing components are kept as they are."""
    resolved: list[str] = []
    pending = [c for c in unsafe.split("/") if c]
    pending.reverse()
    links = 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise RuntimeUserError(f"too many symlinks resolving {unsafe!r} in the rootfs")
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending.extend(reversed([c for c in target.split("/") if c]))
    return os.path.join(root, *resolved)


def _ensure_dir(path: str) -> None:
    os.makedirs(path, mode=0o755, exist_ok=True)


def _ensure_file(path: str) -> None:
    _ensure_dir(os.path.dirname(path))
    if not os.path.lexists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def _locked_flags(path: str) -> int:
    try:
        f_flag = os.statvfs(path).f_flag
    except OSError:
        return 0
    return sum(mflag for bit, mflag in _STATVFS_LOCKED.items() if f_flag & bit)


def remount_bind(path: str, flags: int) -> None:
    """Change the flags of a bind mount; keep the flags the kernel locked if it insists."""
    base = linux.MS_BIND | linux.MS_REMOUNT | (flags & ~(linux.MS_BIND | linux.MS_REC | linux.MS_REMOUNT))
    try:
        linux.mount(None, path, None, base)
    except PermissionError:
        linux.mount(None, path, None, base | _locked_flags(path))


class RootfsBuilder:
    """Builds the mount tree of one container. All paths in `config` are container paths."""

    def __init__(self, config: dict, bundle: str, in_userns: bool,
                 cgroupns: bool = False):
        self.config = config
        self.bundle = bundle
        root_path = config["root"]["path"]
        self.rootfs = os.path.realpath(root_path if os.path.isabs(root_path)
                                       else os.path.join(bundle, root_path))
        self.in_userns = in_userns
        self.cgroupns = cgroupns
        self.linux = config.get("linux") or {}

    # -- before pivot_root ---------------------------------------------------------------
    def prepare(self) -> None:
        """Everything up to (not including) pivot_root."""
        propagation = PROPAGATION.get(self.linux.get("rootfsPropagation") or "rslave",
                                      linux.MS_SLAVE | linux.MS_REC)
        # Nothing we mount may propagate back to the host (unless asked for "shared").
        linux.mount(None, "/", None, propagation | linux.MS_REC)
        if propagation & linux.MS_SHARED:
            self._make_parent_private()
        # pivot_root needs the new root to be a mount point.
        linux.mount(self.rootfs, self.rootfs, None, linux.MS_BIND | linux.MS_REC)
        for index, m in enumerate(self.config.get("mounts") or []):
            try:
                self.mount_one(m)
            except OSError as e:
                raise RuntimeUserError(
                    f"mounts[{index}] ({m.get('destination')}): {e.strerror or e}") from None
        self.create_devices()
        self.create_dev_symlinks()

    def _make_parent_private(self) -> None:
        """pivot_root refuses a new root whose parent mount is shared."""
        best = "/"
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4]
                if (self.rootfs + "/").startswith(mp.rstrip("/") + "/") and len(mp) > len(best):
                    best = mp
        linux.mount(None, best, None, linux.MS_PRIVATE)

    def mount_one(self, m: dict) -> None:
        dest = secure_join(self.rootfs, m["destination"])
        fstype = m.get("type") or ""
        options = list(m.get("options") or [])
        flags, propagation, data, extensions = parse_options(options)
        source = m.get("source") or fstype or "none"
        if fstype == "bind":
            flags |= linux.MS_BIND
        if flags & linux.MS_BIND:
            self._mount_bind(source, dest, flags)
        elif fstype == "cgroup":
            self._mount_cgroup(dest, flags, m["destination"])
        else:
            _ensure_dir(dest)
            self._mount_fs(source, dest, fstype, flags, ",".join(data), "tmpcopyup" in extensions)
        for p in propagation:
            linux.mount(None, dest, None, p)

    def _mount_bind(self, source: str, dest: str, flags: int) -> None:
        if not os.path.isabs(source):
            source = os.path.join(self.bundle, source)
        if not os.path.exists(source):
            raise OSError(errno.ENOENT, f"bind source {source} does not exist")
        if os.path.isdir(source):
            _ensure_dir(dest)
        else:
            _ensure_file(dest)
        linux.mount(source, dest, None, linux.MS_BIND | (flags & linux.MS_REC))
        if flags & ~(linux.MS_BIND | linux.MS_REC):
            remount_bind(dest, flags)

    def _mount_fs(self, source: str, dest: str, fstype: str, flags: int, data: str,
                  copyup: bool) -> None:
        if copyup and fstype == "tmpfs":
            self._mount_tmpfs_copyup(dest, flags, data)
            return
        try:
            linux.mount(source, dest, fstype, flags, data or None)
        except PermissionError:
            if fstype != "sysfs":
                raise
            # In a user namespace that does not own the network namespace sysfs cannot be
            # mounted; a read-only recursive bind of the host's /sys is what runc falls back to.
            linux.mount("/sys", dest, None, linux.MS_BIND | linux.MS_REC)
            remount_bind(dest, flags | linux.MS_RDONLY)

    def _mount_tmpfs_copyup(self, dest: str, flags: int, data: str) -> None:
        """tmpfs that starts with a copy of what the image had at `dest`."""
        import shutil
        import tempfile

        staging = tempfile.mkdtemp(prefix="pyruntime-copyup-")
        try:
            linux.mount("tmpfs", staging, "tmpfs", flags, data or None)
            mode = os.stat(staging).st_mode & 0o7777
            shutil.copytree(dest, staging, symlinks=True, dirs_exist_ok=True)
            # copytree also copies dest's own mode onto the tmpfs root; the mount's mode= wins
            os.chmod(staging, mode)
            linux.mount(staging, dest, None, linux.MS_MOVE)
        finally:
            os.rmdir(staging)

    def _mount_cgroup(self, dest: str, flags: int, container_dest: str) -> None:
        """Show the container its own cgroups at `dest`, v1 (one mount per hierarchy on a tmpfs)
        or v2 (the unified hierarchy)."""
        _ensure_dir(dest)
        hierarchies = _own_cgroups()
        v1 = [h for h in hierarchies if h[1]]
        if not v1:
            path = hierarchies[0][2] if hierarchies else "/"
            if self.cgroupns:
                linux.mount("cgroup2", dest, "cgroup2", flags & ~linux.MS_RDONLY)
            else:
                linux.mount("/sys/fs/cgroup" + path, dest, None, linux.MS_BIND | linux.MS_REC)
            if flags & linux.MS_RDONLY:
                remount_bind(dest, flags)
            return
        linux.mount("tmpfs", dest, "tmpfs", flags & ~linux.MS_RDONLY, "mode=755")
        mountpoints = _cgroup_v1_mountpoints()
        for _, controllers, path in v1:
            host_mp = mountpoints.get(controllers)
            if not host_mp:
                continue
            target = os.path.join(dest, os.path.basename(host_mp))
            _ensure_dir(target)
            if self.cgroupns:
                opts = controllers if not controllers.startswith("name=") else f"none,{controllers}"
                linux.mount("cgroup", target, "cgroup", flags & ~linux.MS_RDONLY, opts)
            else:
                linux.mount(host_mp + path, target, None, linux.MS_BIND)
            if flags & linux.MS_RDONLY:
                remount_bind(target, flags)
        if flags & linux.MS_RDONLY:
            linux.mount(None, dest, None, linux.MS_REMOUNT | flags, "mode=755")

    def create_devices(self) -> None:
        for dev in DEFAULT_DEVICES:
            self.create_device(dev, replace=False)
        for dev in self.linux.get("devices") or []:
            self.create_device(dev, replace=True)

    def create_device(self, dev: dict, replace: bool) -> None:
        path = secure_join(self.rootfs, dev["path"])
        if os.path.lexists(path):
            if not replace:
                return
            os.unlink(path)
        _ensure_dir(os.path.dirname(path))
        if self.in_userns:
            # mknod is not allowed in a user namespace: bind the host's node instead.
            _ensure_file(path)
            linux.mount(dev["path"], path, None, linux.MS_BIND)
            return
        kinds = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
        mode = dev.get("fileMode", 0o666) & 0o7777
        os.mknod(path, mode | kinds[dev["type"]], os.makedev(dev.get("major", 0), dev.get("minor", 0)))
        os.chmod(path, mode)
        os.chown(path, dev.get("uid", 0), dev.get("gid", 0))

    def create_dev_symlinks(self) -> None:
        dev = secure_join(self.rootfs, "/dev")
        if not os.path.isdir(dev):
            return
        links = list(DEV_SYMLINKS)
        if os.path.exists("/proc/kcore"):
            links.append(("/proc/kcore", "/dev/core"))
        if os.path.isdir(os.path.join(dev, "pts")) and os.path.exists(os.path.join(dev, "pts", "ptmx")):
            # Use the container's own devpts instance for new ptys.
            ptmx = os.path.join(dev, "ptmx")
            if os.path.lexists(ptmx):
                os.unlink(ptmx)
            links.append(("pts/ptmx", "/dev/ptmx"))
        for target, name in links:
            path = secure_join(self.rootfs, name)
            if not os.path.lexists(path):
                os.symlink(target, path)

    # -- switching root --------------------------------------------------------------------
    def pivot(self, no_pivot: bool) -> None:
        if no_pivot:
            os.chdir(self.rootfs)
            linux.mount(self.rootfs, "/", None, linux.MS_MOVE)
            os.chroot(".")
            os.chdir("/")
            return
        old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        new_root = os.open(self.rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fchdir(new_root)
            # pivot_root(".", ".") stacks the old root on top of the new one, so no directory
            # for it is needed inside the image; it is then detached from under us.
            linux.pivot_root(".", ".")
            os.fchdir(old_root)
            linux.mount(None, ".", None, linux.MS_SLAVE | linux.MS_REC)
            linux.umount2(".", linux.MNT_DETACH)
        finally:
            os.close(old_root)
            os.close(new_root)
        os.chdir("/")

    # -- after pivot_root ------------------------------------------------------------------
    def finish(self) -> None:
        for path in self.linux.get("maskedPaths") or []:
            mask_path(path)
        for path in self.linux.get("readonlyPaths") or []:
            readonly_path(path)
        if self.config["root"].get("readonly"):
            remount_bind("/", linux.MS_RDONLY)


def mask_path(path: str) -> None:
    try:
        if os.path.isdir(path):
            linux.mount("tmpfs", path, "tmpfs", linux.MS_RDONLY)
        else:
            linux.mount("/dev/null", path, None, linux.MS_BIND)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.ENOTDIR):
            raise


def readonly_path(path: str) -> None:
    try:
        linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return
        raise
    remount_bind(path, linux.MS_RDONLY | linux.MS_REC)


def _own_cgroups() -> list[tuple[str, str, str]]:
    """(hierarchy id, controllers, path) of this process, from /proc/self/cgroup."""
    result = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            hid, controllers, path = line.rstrip("\n").split(":", 2)
            result.append((hid, controllers, path))
    return result


def _cgroup_v1_mountpoints() -> dict[str, str]:
    """Comma-joined controllers (as in /proc/self/cgroup) -> host mount point."""
    found: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields = post.split()
            if not fields or fields[0] != "cgroup":
                continue
            super_opts = fields[2].split(",")
            names = [o for o in super_opts if o not in ("rw", "ro", "relatime", "noatime",
                                                        "nosuid", "nodev", "noexec", "xattr",
                                                        "clone_children", "cpuset_v2_mode")
                     and not o.startswith("release_agent")]
            key = ",".join(names)
            found.setdefault(key, pre.split()[4])
    return found
