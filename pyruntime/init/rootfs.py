"""The container's filesystem view, built inside its new mount namespace.

Order (as the runtime-spec and runc have it): make the host's mounts non-propagating, bind the
rootfs onto itself, perform `mounts` in order, create devices and /dev symlinks, then (after the
createContainer hooks) pivot_root, mask and read-only paths, and finally a read-only root.

Every destination is resolved inside the rootfs by the kernel and used through a file
descriptor (inroot.Root): a symlink in the image, or one swapped in by another container that
shares a volume, can never make a mount, a directory or a device land outside the rootfs.
Binds are cloned trees attached with move_mount, their flags set on the detached copy, so no
path is walked twice and no bind is ever visible with the wrong flags. Devices and /dev links
are made only on filesystems that belong to the container (its rootfs and the filesystems the
init mounted); a /dev bind-mounted from the host is used as it is, as runc does.
"""

from __future__ import annotations

import errno
import os
import stat

from pyruntime import linux
from pyruntime.errors import RuntimeUserError
from pyruntime.init.inroot import (Root, chmod_fd, chown_fd, copy_tree, fd_path, mount_id,
                                   open_beneath)

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

# Recursive options (runtime-spec "rro", "rnosuid", ...): mount_setattr attributes applied to a
# mount and every mount below it. option -> (attributes to set, attributes to clear).
RECURSIVE_OPTIONS: dict[str, tuple[int, int]] = {
    "rro": (linux.MOUNT_ATTR_RDONLY, 0), "rrw": (0, linux.MOUNT_ATTR_RDONLY),
    "rnosuid": (linux.MOUNT_ATTR_NOSUID, 0), "rsuid": (0, linux.MOUNT_ATTR_NOSUID),
    "rnodev": (linux.MOUNT_ATTR_NODEV, 0), "rdev": (0, linux.MOUNT_ATTR_NODEV),
    "rnoexec": (linux.MOUNT_ATTR_NOEXEC, 0), "rexec": (0, linux.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (linux.MOUNT_ATTR_NODIRATIME, 0), "rdiratime": (0, linux.MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (linux.MOUNT_ATTR_NOSYMFOLLOW, 0),
    "rsymfollow": (0, linux.MOUNT_ATTR_NOSYMFOLLOW),
    # the kernel takes an atime mode only together with a clear of the whole atime field
    "rrelatime": (linux.MOUNT_ATTR_RELATIME, linux.MOUNT_ATTR__ATIME),
    "rnorelatime": (linux.MOUNT_ATTR_RELATIME, linux.MOUNT_ATTR__ATIME),
    "rnoatime": (linux.MOUNT_ATTR_NOATIME, linux.MOUNT_ATTR__ATIME),
    "ratime": (linux.MOUNT_ATTR_RELATIME, linux.MOUNT_ATTR__ATIME),
    "rstrictatime": (linux.MOUNT_ATTR_STRICTATIME, linux.MOUNT_ATTR__ATIME),
    "rnostrictatime": (linux.MOUNT_ATTR_RELATIME, linux.MOUNT_ATTR__ATIME),
}

# Options that are instructions to the runtime rather than mount flags or fs data.
RUNTIME_OPTIONS = {"tmpcopyup", "notmpcopyup", "copy-symlink", "z", "Z", "U", "idmap",
                   "ridmap", *RECURSIVE_OPTIONS}

# Per-mount flags -> the mount_setattr attributes that carry them.
_MOUNT_ATTRS = {
    linux.MS_RDONLY: linux.MOUNT_ATTR_RDONLY, linux.MS_NOSUID: linux.MOUNT_ATTR_NOSUID,
    linux.MS_NODEV: linux.MOUNT_ATTR_NODEV, linux.MS_NOEXEC: linux.MOUNT_ATTR_NOEXEC,
    linux.MS_NODIRATIME: linux.MOUNT_ATTR_NODIRATIME,
    linux.MS_NOSYMFOLLOW: linux.MOUNT_ATTR_NOSYMFOLLOW,
}
_ATIME_ATTRS = {
    linux.MS_NOATIME: linux.MOUNT_ATTR_NOATIME, linux.MS_STRICTATIME: linux.MOUNT_ATTR_STRICTATIME,
    linux.MS_RELATIME: linux.MOUNT_ATTR_RELATIME,
}
# statvfs f_flag bits -> mount attributes: what a mount has now (for locked flags).
_STATVFS_ATTRS = {
    os.ST_RDONLY: linux.MOUNT_ATTR_RDONLY, os.ST_NOSUID: linux.MOUNT_ATTR_NOSUID,
    os.ST_NODEV: linux.MOUNT_ATTR_NODEV, os.ST_NOEXEC: linux.MOUNT_ATTR_NOEXEC,
}
_DEVICE_KINDS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}

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


def recursive_attributes(options: list[str]) -> tuple[int, int]:
    """(attributes to set, attributes to clear) on a mount and all below it, from its
    recursive options; a later option wins over an earlier one, as with plain flags."""
    attr_set = attr_clr = 0
    for opt in options:
        if opt not in RECURSIVE_OPTIONS:
            continue
        add, remove = RECURSIVE_OPTIONS[opt]
        if remove & linux.MOUNT_ATTR__ATIME:    # one atime mode replaces another
            attr_set = (attr_set & ~linux.MOUNT_ATTR__ATIME) | add
            attr_clr |= linux.MOUNT_ATTR__ATIME
        else:
            attr_set = (attr_set & ~remove) | add
            attr_clr = (attr_clr & ~add) | remove
    return attr_set, attr_clr


def mount_attributes(flags: int) -> tuple[int, int]:
    """(attributes to set, attributes to clear) that give a bind exactly the per-mount `flags`,
    as a bind remount with those flags would; atime is kept unless one is named."""
    attr_set = attr_clr = 0
    for flag, attr in _MOUNT_ATTRS.items():
        if flags & flag:
            attr_set |= attr
        else:
            attr_clr |= attr
    for flag, attr in _ATIME_ATTRS.items():
        if flags & flag:
            attr_set |= attr
            attr_clr |= linux.MOUNT_ATTR__ATIME
            break
    return attr_set, attr_clr


def set_bind_flags(mount_fd: int, flags: int) -> None:
    """Give the mount `mount_fd` the per-mount flags of a bind's options. A plain bind keeps
    its source's flags. A mount inherited into a user namespace cannot lose ro, nosuid, nodev
    or noexec (the kernel locks them): those it has stay, as a bind remount must keep them."""
    if not flags & ~(linux.MS_BIND | linux.MS_REC | linux.MS_REMOUNT):
        return
    attr_set, attr_clr = mount_attributes(flags)
    try:
        linux.mount_setattr(mount_fd, attr_set, attr_clr)
    except PermissionError:
        f_flag = os.fstatvfs(mount_fd).f_flag
        locked = sum(attr for bit, attr in _STATVFS_ATTRS.items() if f_flag & bit)
        linux.mount_setattr(mount_fd, attr_set, attr_clr & ~locked)


def clone_tree(source: str, recursive: bool, dirfd: int = linux.AT_FDCWD) -> int:
    """A detached copy of the mount tree at `source` (host path, or "" for `dirfd` itself)."""
    flags = linux.OPEN_TREE_CLONE | linux.OPEN_TREE_CLOEXEC
    if recursive:
        flags |= linux.AT_RECURSIVE
    if not source:
        flags |= linux.AT_EMPTY_PATH
    return linux.open_tree(source, flags, dirfd)


def bind_onto(target: int, source: str = "", dirfd: int = linux.AT_FDCWD, what: str = "") -> None:
    """Attach a copy of the mount at `source` (a host path, or "" for what `dirfd` refers to)
    on what the fd `target` refers to."""
    tree = clone_tree(source, recursive=False, dirfd=dirfd)
    try:
        linux.move_mount_to_fd(tree, target, what or source)
    finally:
        os.close(tree)


def _is_dev(destination: str) -> bool:
    return os.path.normpath("/" + (destination or "").strip("/")) == "/dev"


def is_bind(m: dict) -> bool:
    options = m.get("options") or []
    return m.get("type") == "bind" or "bind" in options or "rbind" in options


def bind_source(m: dict, bundle: str) -> str:
    source = m.get("source") or ""
    return source if os.path.isabs(source) else os.path.join(bundle, source)


def is_idmapped(m: dict) -> bool:
    """runtime-spec: a mount with its own id mappings, or the idmap/ridmap option."""
    options = m.get("options") or []
    return bool(m.get("uidMappings") or "idmap" in options or "ridmap" in options)


def detach_bind(source: str, options: list[str], idmap_userns: int | None = None) -> int:
    """A detached copy of the tree at the host path `source` with the flags and recursive
    attributes a bind with `options` asks for, idmapped through the user namespace
    `idmap_userns` if given; move_mount attaches it."""
    flags = parse_options(options)[0] | linux.MS_BIND
    try:
        tree = clone_tree(source, recursive=bool(flags & linux.MS_REC))
    except FileNotFoundError:
        raise OSError(errno.ENOENT, f"bind source {source} does not exist") from None
    try:
        set_bind_flags(tree, flags)
        recursive = recursive_attributes(options)
        if any(recursive):
            linux.mount_setattr(tree, *recursive, recursive=True)
        if idmap_userns is not None:
            _idmap(tree, idmap_userns, recursive="ridmap" in options)
    except BaseException:
        os.close(tree)
        raise
    return tree


def _idmap(tree: int, userns: int, recursive: bool) -> None:
    try:
        linux.mount_setattr(tree, linux.MOUNT_ATTR_IDMAP, userns_fd=userns, recursive=recursive)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        raise OSError(e.errno, "cannot idmap it: its filesystem (or one below it, with "
                               "ridmap) does not support idmapped mounts") from None


def detach_bind_sources(config: dict, bundle: str) -> dict[int, int]:
    """Each bind of `config` as a detached tree made now, with the runtime's credentials:
    called before the container's user namespace exists, so a source its root could not
    reach still works (runc opens its mount sources on the host side too), and an idmapped
    one can be given its maps (only the host's root may idmap a host mount). The trees are
    attached in the new mount namespace later. mounts index -> tree fd."""
    from pyruntime.init.idmapped import MappingNamespaces

    lx = config.get("linux") or {}
    namespaces = MappingNamespaces()
    trees: dict[int, int] = {}
    try:
        for index, m in enumerate(config.get("mounts") or []):
            if not is_bind(m):
                continue
            try:
                userns = None
                if is_idmapped(m):
                    userns = namespaces.fd_for(m.get("uidMappings") or lx.get("uidMappings") or [],
                                               m.get("gidMappings") or lx.get("gidMappings") or [])
                trees[index] = detach_bind(bind_source(m, bundle), list(m.get("options") or []),
                                           userns)
            except OSError as e:
                raise RuntimeUserError(f"mounts[{index}] ({m.get('destination')}): "
                                       f"{e.strerror or e}") from None
    except BaseException:
        for tree in trees.values():
            os.close(tree)
        raise
    finally:
        namespaces.close()
    return trees


def dev_is_bind_mounted(mounts: list[dict]) -> bool:
    """runc's rule: a /dev the config bind-mounts is the caller's; nothing is made in it."""
    for m in mounts:
        if _is_dev(m.get("destination")) and is_bind(m):
            return True
    return False


class RootfsBuilder:
    """Builds the mount tree of one container. All paths in `config` are container paths."""

    def __init__(self, config: dict, bundle: str, in_userns: bool,
                 cgroupns: bool = False, bind_trees: dict[int, int] | None = None):
        self.config = config
        self.bundle = bundle
        root_path = config["root"]["path"]
        self.rootfs = os.path.realpath(root_path if os.path.isabs(root_path)
                                       else os.path.join(bundle, root_path))
        self.in_userns = in_userns
        self.cgroupns = cgroupns
        self.bind_trees = bind_trees or {}   # binds detached on the host side (mounts index)
        self.linux = config.get("linux") or {}
        self.root: Root | None = None
        # Mounts that belong to the container: the rootfs and what the init mounted anew.
        # Devices and links are only ever made on these.
        self.own_mounts: set[int] = set()
        self.own_dev = False    # /dev is on one of them (known before pivot_root hides /proc)
        self.readonly_dev = False   # a read-only /dev, made read-only once it is filled

    # -- before pivot_root ---------------------------------------------------------------
    def prepare(self) -> None:
        """Everything up to (not including) pivot_root."""
        # Nothing we mount may propagate back to the host: every mount we inherited becomes
        # a slave (or private, when asked), whatever `/` is to be in the end (see pivot).
        wanted = PROPAGATION.get(self.linux.get("rootfsPropagation") or "", 0)
        isolation = linux.MS_PRIVATE if wanted & linux.MS_PRIVATE else linux.MS_SLAVE
        linux.mount(None, "/", None, isolation | linux.MS_REC)
        # pivot_root refuses a new root under a shared mount, and an unbindable one could not
        # be bound: the mount holding the rootfs is made private in this namespace first.
        self._make_parent_private()
        # pivot_root needs the new root to be a mount point.
        linux.mount(self.rootfs, self.rootfs, None, linux.MS_BIND | linux.MS_REC)
        self.root = Root(self.rootfs)
        self.own_mounts.add(mount_id(self.root.fd))
        mounts = self.config.get("mounts") or []
        for index, m in enumerate(mounts):
            try:
                self.mount_one(m, self.bind_trees.pop(index, None))
            except OSError as e:
                raise RuntimeUserError(
                    f"mounts[{index}] ({m.get('destination')}): {e.strerror or e}") from None
        self.own_dev = not dev_is_bind_mounted(mounts) and self._own_directory("/dev")
        if self.own_dev:
            self.create_devices()
            self.create_dev_symlinks()
        self._make_cwd()
        if self.readonly_dev:
            dev = self.root.open("/dev", os.O_PATH | os.O_DIRECTORY)
            try:
                linux.mount_setattr(dev, linux.MOUNT_ATTR_RDONLY)
            finally:
                os.close(dev)

    def _make_parent_private(self) -> None:
        """pivot_root refuses a new root whose parent mount is shared."""
        best = "/"
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4]
                if (self.rootfs + "/").startswith(mp.rstrip("/") + "/") and len(mp) > len(best):
                    best = mp
        linux.mount(None, best, None, linux.MS_PRIVATE)

    def _make_cwd(self) -> None:
        """A process.cwd the image lacks is made (as runc does), root's and 0755: whether the
        process's user may enter it is then up to the user."""
        cwd = (self.config.get("process") or {}).get("cwd")
        if not cwd:
            return
        try:
            os.close(self.root.open(cwd))
            return
        except FileNotFoundError:
            pass
        except OSError:
            return   # there but not to be entered: entering it says why, as the process's user
        try:
            os.close(self.root.mkdir_all(cwd))
        except OSError as e:
            raise RuntimeUserError(f"process.cwd: cannot create {cwd}: {e.strerror or e}") from None

    def _own_directory(self, container_path: str) -> bool:
        """Open (or make) `container_path` on one of the container's own mounts; False when
        what is there lies on another (a bind mount the rootfs carried along)."""
        try:
            os.close(self.root.mkdir_all(container_path, on_mounts=self.own_mounts))
            return True
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            return False

    def mount_one(self, m: dict, bind_tree: int | None = None) -> None:
        """Mount `m`; `bind_tree`: the bind, already detached on the host side."""
        dest = m["destination"]
        fstype = m.get("type") or ""
        options = list(m.get("options") or [])
        flags, propagation, data, extensions = parse_options(options)
        recursive = recursive_attributes(options)
        source = m.get("source") or fstype or "none"
        if fstype == "bind":
            flags |= linux.MS_BIND
        if _is_dev(dest) and flags & linux.MS_RDONLY and not flags & linux.MS_BIND:
            # /dev/pts, /dev/shm, the devices and links still have to be made in it
            self.readonly_dev = True
            flags &= ~linux.MS_RDONLY
        if bind_tree is None and is_idmapped(m):
            raise OSError(errno.EINVAL, "idmapped mounts are made of binds only")
        if bind_tree is not None:
            mount_fd = self._attach_tree(bind_tree, dest)
        elif flags & linux.MS_BIND:
            mount_fd = self._attach_tree(detach_bind(bind_source(m, self.bundle), options), dest)
        elif fstype == "cgroup":
            mount_fd = self._mount_cgroup(dest, flags)
        elif "tmpcopyup" in extensions and fstype == "tmpfs":
            mount_fd = self._mount_tmpfs_copyup(dest, flags, data)
        else:
            if fstype == "tmpfs":
                data = self._with_covered_mode(dest, data)
            mount_fd = self._mount_fs(source, dest, fstype, flags, ",".join(data))
        try:
            if any(recursive) and not flags & linux.MS_BIND:
                linux.mount_setattr(mount_fd, *recursive, recursive=True)
            for p in propagation:
                linux.mount(None, fd_path(mount_fd), None, p)
        finally:
            os.close(mount_fd)

    def _is_symlink(self, dest: str) -> bool:
        try:
            fd = self.root.open(dest, os.O_PATH | os.O_NOFOLLOW)
        except OSError:
            return False
        try:
            return stat.S_ISLNK(os.fstat(fd).st_mode)
        finally:
            os.close(fd)

    def _with_covered_mode(self, dest: str, data: list[str]) -> list[str]:
        """A tmpfs without mode= takes the mode of the directory it covers (as runc does);
        one over a path the image lacks keeps tmpfs's own default."""
        if any(d.startswith("mode=") for d in data):
            return data
        try:
            covered = self.root.open(dest, os.O_PATH | os.O_DIRECTORY)
        except OSError:
            return data
        try:
            mode = stat.S_IMODE(os.fstat(covered).st_mode)
        finally:
            os.close(covered)
        return [*data, f"mode={mode:o}"]

    def _attach_tree(self, tree: int, dest: str) -> int:
        """Attach a detached bind on the destination's fd. Returns (and owns) `tree`, now an fd
        of the new mount."""
        try:
            self._attach(tree, dest, stat.S_ISDIR(os.fstat(tree).st_mode))
        except BaseException:
            os.close(tree)
            raise
        return tree

    def _attach(self, tree: int, dest: str, is_dir: bool) -> None:
        target = self.root.mkdir_all(dest) if is_dir else self.root.make_file(dest)
        try:
            linux.move_mount_to_fd(tree, target, dest)
        finally:
            os.close(target)

    def _mount_fs(self, source: str, dest: str, fstype: str, flags: int, data: str) -> int:
        """A new filesystem on the destination's fd; returns an fd of the new mount."""
        if fstype in ("proc", "sysfs") and self._is_symlink(dest):
            # The masked and read-only paths under them are named by these paths: a symlink
            # would have them land elsewhere (runc refuses it too, CVE-2019-19921).
            raise OSError(errno.ELOOP, f'filesystem "{fstype}" must be mounted on an ordinary '
                                       f"directory, and {dest} is a symlink")
        target = self.root.mkdir_all(dest)
        try:
            try:
                linux.mount(source, fd_path(target), fstype, flags, data or None)
            except PermissionError:
                if fstype != "sysfs":
                    raise
                # In a user namespace that does not own the network namespace sysfs cannot be
                # mounted; a read-only recursive bind of the host's /sys is what runc falls back to.
                tree = clone_tree("/sys", recursive=True)
                try:
                    set_bind_flags(tree, flags | linux.MS_RDONLY)
                    linux.move_mount_to_fd(tree, target, dest)
                finally:
                    os.close(tree)
        finally:
            os.close(target)
        new = self.root.open(dest, os.O_PATH | os.O_DIRECTORY)
        self.own_mounts.add(mount_id(new))
        return new

    def _mount_tmpfs_copyup(self, dest: str, flags: int, data: list[str]) -> int:
        """A tmpfs that starts with a copy of what the image had at `dest`: filled while it is
        detached, then attached."""
        options = [("source", "tmpfs")]
        options += [tuple(o.split("=", 1)) if "=" in o else (o, None) for o in data]
        attr_set, _ = mount_attributes(flags)
        tree = linux.fsmount_new("tmpfs", options, attr_set & ~linux.MOUNT_ATTR_RDONLY)
        try:
            target = self.root.mkdir_all(dest)
            try:
                # without mode=, the tmpfs takes the mode of the directory it covers
                copy_tree(target, tree, copy_root_mode=not any(k == "mode" for k, _ in options))
                if attr_set & linux.MOUNT_ATTR_RDONLY:
                    linux.mount_setattr(tree, linux.MOUNT_ATTR_RDONLY)
                linux.move_mount_to_fd(tree, target, dest)
            finally:
                os.close(target)
        except BaseException:
            os.close(tree)
            raise
        self.own_mounts.add(mount_id(tree))
        return tree

    def _mount_cgroup(self, dest: str, flags: int) -> int:
        """Show the container its own cgroups at `dest`, v1 (one mount per hierarchy on a tmpfs)
        or v2 (the unified hierarchy). Returns an fd of the new mount."""
        hierarchies = _own_cgroups()
        v1 = [h for h in hierarchies if h[1]]
        if not v1:
            path = hierarchies[0][2] if hierarchies else "/"
            if self.cgroupns:
                mount_fd = self._mount_fs("cgroup2", dest, "cgroup2", flags & ~linux.MS_RDONLY, "")
                if flags & linux.MS_RDONLY:
                    set_bind_flags(mount_fd, flags)
            else:
                mount_fd = clone_tree("/sys/fs/cgroup" + path, recursive=True)
                set_bind_flags(mount_fd, flags)
                self._attach(mount_fd, dest, is_dir=True)
            return mount_fd
        tmpfs = self._mount_fs("tmpfs", dest, "tmpfs", flags & ~linux.MS_RDONLY, "mode=755")
        mountpoints = _cgroup_v1_mountpoints()
        for _, controllers, path in v1:
            host_mp = mountpoints.get(controllers)
            if host_mp:
                self._mount_cgroup_v1(tmpfs, os.path.basename(host_mp), controllers,
                                      host_mp + path, flags)
        if flags & linux.MS_RDONLY:
            linux.mount(None, fd_path(tmpfs), None, linux.MS_REMOUNT | flags, "mode=755")
        return tmpfs

    def _mount_cgroup_v1(self, tmpfs: int, name: str, controllers: str, host_dir: str,
                         flags: int) -> None:
        """One v1 hierarchy in the tmpfs just made (nothing but us can have changed it)."""
        os.mkdir(name, 0o755, dir_fd=tmpfs)
        target = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=tmpfs)
        try:
            if self.cgroupns:
                opts = controllers if not controllers.startswith("name=") else f"none,{controllers}"
                linux.mount("cgroup", fd_path(target), "cgroup", flags & ~linux.MS_RDONLY, opts)
                mount_fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=tmpfs)
            else:
                mount_fd = clone_tree(host_dir, recursive=False)
                linux.move_mount_to_fd(mount_fd, target, name)
            try:
                if flags & linux.MS_RDONLY:
                    set_bind_flags(mount_fd, flags)
            finally:
                os.close(mount_fd)
        finally:
            os.close(target)

    # -- devices ---------------------------------------------------------------------------
    def create_devices(self) -> None:
        for dev in DEFAULT_DEVICES:
            try:
                self.create_device(dev, replace=False)
            except OSError as e:
                raise RuntimeUserError(f"default device {dev['path']}: {e.strerror or e}") from None
        for index, dev in enumerate(self.linux.get("devices") or []):
            try:
                self.create_device(dev, replace=True)
            except OSError as e:
                raise RuntimeUserError(
                    f"linux.devices[{index}] ({dev['path']}): {e.strerror or e}") from None

    def create_device(self, dev: dict, replace: bool) -> None:
        # Only ever in the container's own filesystems: never in a bind-mounted volume.
        parent, name = self.root.open_parent(dev["path"], follow=False, on_mounts=self.own_mounts)
        try:
            if _lexists_at(parent, name):
                if not replace:
                    return
                os.unlink(name, dir_fd=parent)
            if self.in_userns:
                self._bind_host_device(dev["path"], parent, name)
                return
            mode = dev.get("fileMode", 0o666) & 0o7777
            os.mknod(name, mode | _DEVICE_KINDS[dev["type"]],
                     os.makedev(dev.get("major", 0), dev.get("minor", 0)), dir_fd=parent)
            node = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            try:
                chmod_fd(node, mode)
                chown_fd(node, dev.get("uid", 0), dev.get("gid", 0))
            finally:
                os.close(node)
        finally:
            os.close(parent)

    def _bind_host_device(self, host_path: str, parent: int, name: str) -> None:
        """mknod is not allowed in a user namespace: bind the host's node instead."""
        tree = clone_tree(host_path, recursive=False)
        try:
            mode = os.fstat(tree).st_mode
            if not (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)):
                raise OSError(errno.EINVAL, f"{host_path} on the host is not a device")
            # a node needs neither exec nor set-id: the bind gets nosuid and noexec
            linux.mount_setattr(tree, linux.MOUNT_ATTR_NOSUID | linux.MOUNT_ATTR_NOEXEC)
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o644, dir_fd=parent))
            target = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            try:
                linux.move_mount_to_fd(tree, target, host_path)
            finally:
                os.close(target)
        finally:
            os.close(tree)

    def create_dev_symlinks(self) -> None:
        dev = self.root.open("/dev", os.O_PATH | os.O_DIRECTORY)
        try:
            links = list(DEV_SYMLINKS)
            if os.path.exists("/proc/kcore"):
                links.append(("/proc/kcore", "/dev/core"))
            if _exists_below(dev, "pts/ptmx"):
                # Use the container's own devpts instance for new ptys.
                if _lexists_at(dev, "ptmx"):
                    os.unlink("ptmx", dir_fd=dev)
                links.append(("pts/ptmx", "/dev/ptmx"))
            for target, name in links:
                name = name[len("/dev/"):]
                if not _lexists_at(dev, name):
                    os.symlink(target, name, dir_fd=dev)
        finally:
            os.close(dev)

    # -- switching root --------------------------------------------------------------------
    def pivot(self, no_pivot: bool) -> None:
        if self.root is not None:
            self.root.close()
        if no_pivot:
            self._move_root()
        else:
            self._pivot_root()

    def _move_root(self) -> None:
        """--no-pivot: move the rootfs over / and chroot. The host's mounts stay in this
        namespace under the new root, so its full proc and sysfs mounts go first: while one is
        reachable, the kernel lets a process in a nested user namespace mount a fresh,
        unmasked proc or sysfs (as runc hides them)."""
        for mountpoint in _host_proc_and_sys(self.rootfs):
            try:
                linux.umount2(mountpoint, linux.MNT_DETACH)
            except FileNotFoundError:
                continue    # under one already detached
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.EPERM):
                    raise
                # locked in a user namespace: cover it instead
                linux.mount("tmpfs", mountpoint, "tmpfs", 0, None)
        os.chdir(self.rootfs)
        linux.mount(self.rootfs, "/", None, linux.MS_MOVE)
        os.chroot(".")
        os.chdir("/")

    def _pivot_root(self) -> None:
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
        with Root("/") as root:
            for path in self.linux.get("maskedPaths") or []:
                mask_path(root, path)
            for path in self.linux.get("readonlyPaths") or []:
                readonly_path(root, path)
            if self.config["root"].get("readonly"):
                linux.mount_setattr(root.fd, linux.MOUNT_ATTR_RDONLY)
        wanted = self.linux.get("rootfsPropagation")
        if wanted:
            # Last: the new root is a bind made under a private parent, so it started out
            # private; "shared" or "unbindable" are given to it here, as crun does (and the
            # clones above could not be made of an unbindable tree).
            linux.mount(None, "/", None, PROPAGATION[wanted])

    def bind_console(self, pty: int) -> None:
        """Bind the terminal `pty` over /dev/console (after pivot_root). A /dev that is not
        the container's own gets no new entry: its console, if it has one, is covered."""
        with Root("/") as root:
            try:
                if self.own_dev:
                    target = root.make_file("/dev/console")
                else:
                    target = root.open("/dev/console")
            except (FileNotFoundError, NotADirectoryError):
                return
            try:
                bind_onto(target, dirfd=pty, what="/dev/console")
            finally:
                os.close(target)


def _lexists_at(dirfd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def _exists_below(dirfd: int, relative: str) -> bool:
    """`relative` exists below `dirfd`, reached without following any symlink."""
    try:
        os.close(open_beneath(dirfd, relative))
        return True
    except OSError:
        return False


def mask_path(root: Root, path: str) -> None:
    """Hide `path`: a read-only empty tmpfs over a directory, the container's /dev/null over
    anything else. Neither needs /proc: both are detached mounts attached by fd."""
    try:
        target = root.open(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        if stat.S_ISDIR(os.fstat(target).st_mode):
            tree = linux.fsmount_new("tmpfs", [("source", "tmpfs")], linux.MOUNT_ATTR_RDONLY)
            try:
                linux.move_mount_to_fd(tree, target, path)
            finally:
                os.close(tree)
            return
        try:
            null = root.open("/dev/null")
        except FileNotFoundError:
            raise RuntimeUserError(f"linux.maskedPaths: cannot mask {path}: "
                                   "the container has no /dev/null") from None
        try:
            bind_onto(target, dirfd=null, what=path)
        finally:
            os.close(null)
    finally:
        os.close(target)


def readonly_path(root: Root, path: str) -> None:
    """Make `path` and every mount below it read-only; the other flags of what it covers
    (nosuid, nodev, noexec) stay, as the copy keeps them."""
    try:
        target = root.open(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        tree = clone_tree("", recursive=True, dirfd=target)
        try:
            linux.mount_setattr(tree, linux.MOUNT_ATTR_RDONLY, recursive=True)
            linux.move_mount_to_fd(tree, target, path)
        finally:
            os.close(tree)
    finally:
        os.close(target)


def _host_proc_and_sys(rootfs: str) -> list[str]:
    """Mount points of whole (root "/") proc and sysfs mounts outside `rootfs`, from this
    namespace's mountinfo, deepest first."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields = pre.split()
            fstype = post.split()[0] if post else ""
            mountpoint = _unescape(fields[4])
            if (fstype in ("proc", "sysfs") and fields[3] == "/"
                    and not (mountpoint + "/").startswith(rootfs.rstrip("/") + "/")):
                found.append(mountpoint)
    return sorted(found, key=len, reverse=True)


def _unescape(field: str) -> str:
    """A mountinfo path field: the kernel writes space, tab, newline and backslash as octal."""
    for escaped, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, char)
    return field


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
