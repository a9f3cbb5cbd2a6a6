"""The container's mount set-up as a plan: what the config alone decides, in the order it is done.

`plan_mounts` turns config.json (and the bundle it lives in) into three lists of operations:
before pivot_root (isolation from the host, the rootfs bind, `mounts` in order, /dev's devices
and links, process.cwd, a deferred read-only /dev), the root switch (pivot_root or --no-pivot's
move), and after it (masked paths, read-only paths, a read-only root, the root's propagation).
Nothing here touches the kernel or the disk: rootfs.RootfsBuilder executes the plan, and what
only the disk can tell (whether /dev is the container's own mount, the mode a tmpfs covers, a
symlink where proc goes) is found out there, when the operation runs.

The operations are plain classes with __slots__: the init pays for every import before
pivot_root, and dataclasses would bring inspect along.
"""

from __future__ import annotations

import os
import stat

from pyruntime import linux

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

# (link target, link) made in a /dev of the container's own; /dev/core and /dev/ptmx depend
# on what the container's /proc and devpts turn out to hold.
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


def is_dev(destination: str) -> bool:
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


def dev_is_bind_mounted(mounts: list[dict]) -> bool:
    """runc's rule: a /dev the config bind-mounts is the caller's; nothing is made in it."""
    for m in mounts:
        if is_dev(m.get("destination")) and is_bind(m):
            return True
    return False


def rootfs_path(config: dict, bundle: str) -> str:
    root_path = config["root"]["path"]
    return os.path.realpath(root_path if os.path.isabs(root_path)
                            else os.path.join(bundle, root_path))


# -- operations ---------------------------------------------------------------------------
class Operation:
    """One step of the plan; equal to another of its kind with the same fields."""

    __slots__ = ()

    def names(self) -> tuple[str, ...]:
        return tuple(n for cls in reversed(type(self).__mro__)
                     for n in cls.__dict__.get("__slots__", ()))

    def fields(self) -> tuple:
        return tuple(getattr(self, name) for name in self.names())

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.fields() == self.fields()

    __hash__ = None

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.names())
        return f"{type(self).__name__}({inner})"


class IsolateFromHost(Operation):
    """Every inherited mount becomes a slave (or private): nothing mounted later propagates
    back to the host."""

    __slots__ = ("flags",)

    def __init__(self, flags: int):
        self.flags = flags


class BindRootfs(Operation):
    """The rootfs bound onto itself (pivot_root needs a mount point), its parent mount made
    private first (pivot_root refuses a shared one)."""

    __slots__ = ("rootfs",)

    def __init__(self, rootfs: str):
        self.rootfs = rootfs


class Mount(Operation):
    """What every entry of `mounts` has: its index (for errors), destination, MS_* flags,
    recursive attributes (set, clear), propagation changes in order, and whether it asks for
    an id mapping."""

    __slots__ = ("destination", "flags", "idmapped", "index", "propagation", "recursive")

    def __init__(self, index: int, destination: str, flags: int, recursive: tuple[int, int],
                 propagation: tuple[int, ...], idmapped: bool):
        self.index = index
        self.destination = destination
        self.flags = flags
        self.recursive = recursive
        self.propagation = propagation
        self.idmapped = idmapped


class Bind(Mount):
    """A bind of the host path `source` (flags include MS_BIND, and MS_REC for rbind); an
    idmapped one takes `uid_mappings`/`gid_mappings`, below it too with `idmap_recursive`."""

    __slots__ = ("gid_mappings", "idmap_recursive", "source", "uid_mappings")

    def __init__(self, index, destination, flags, recursive, propagation, idmapped,
                 source: str, idmap_recursive: bool = False,
                 uid_mappings: tuple = (), gid_mappings: tuple = ()):
        super().__init__(index, destination, flags, recursive, propagation, idmapped)
        self.source = source
        self.idmap_recursive = idmap_recursive
        self.uid_mappings = uid_mappings
        self.gid_mappings = gid_mappings


class NewFilesystem(Mount):
    """A new filesystem of `fstype`; `data` its options. A tmpfs without mode= takes the mode
    of the directory it covers (`covered_mode`), found when it is mounted."""

    __slots__ = ("covered_mode", "data", "fstype", "source")

    def __init__(self, index, destination, flags, recursive, propagation, idmapped,
                 fstype: str, source: str, data: tuple[str, ...], covered_mode: bool):
        super().__init__(index, destination, flags, recursive, propagation, idmapped)
        self.fstype = fstype
        self.source = source
        self.data = data
        self.covered_mode = covered_mode


class TmpfsCopyUp(Mount):
    """A tmpfs (options `data`) filled with a copy of what the image has at its destination."""

    __slots__ = ("data",)

    def __init__(self, index, destination, flags, recursive, propagation, idmapped,
                 data: tuple[str, ...]):
        super().__init__(index, destination, flags, recursive, propagation, idmapped)
        self.data = data


class CgroupMount(Mount):
    """The container's own cgroups (the hierarchies are read from /proc when it runs)."""

    __slots__ = ()


class Device(Operation):
    """One device node: `kind` the S_IF* type, `mode` its permission bits; `label` names it
    in an error. `replace`: an entry already there is replaced (else kept)."""

    __slots__ = ("gid", "kind", "label", "major", "minor", "mode", "path", "replace", "uid")

    def __init__(self, path: str, kind: int, mode: int, major: int, minor: int, uid: int,
                 gid: int, replace: bool, label: str):
        self.path = path
        self.kind = kind
        self.mode = mode
        self.major = major
        self.minor = minor
        self.uid = uid
        self.gid = gid
        self.replace = replace
        self.label = label


class PopulateDev(Operation):
    """Devices and links in /dev, if /dev turns out to be on the container's own mounts.
    `bind_from_host`: in a user namespace nodes cannot be made, the host's are bound."""

    __slots__ = ("bind_from_host", "devices", "links")

    def __init__(self, devices: tuple[Device, ...], links: tuple[tuple[str, str], ...],
                 bind_from_host: bool):
        self.devices = devices
        self.links = links
        self.bind_from_host = bind_from_host


class MakeCwd(Operation):
    """process.cwd, made (root's, 0755) if the image lacks it."""

    __slots__ = ("cwd",)

    def __init__(self, cwd: str):
        self.cwd = cwd


class ReadonlyDev(Operation):
    """A /dev asked to be read-only, made so once its devices and links are in it."""

    __slots__ = ()


class PivotRoot(Operation):
    __slots__ = ("rootfs",)

    def __init__(self, rootfs: str):
        self.rootfs = rootfs


class MoveRoot(Operation):
    """--no-pivot: the rootfs moved over / and chroot'ed into, the host's proc and sysfs
    hidden first."""

    __slots__ = ("rootfs",)

    def __init__(self, rootfs: str):
        self.rootfs = rootfs


class MaskPath(Operation):
    __slots__ = ("path",)

    def __init__(self, path: str):
        self.path = path


class ReadonlyPath(Operation):
    __slots__ = ("path",)

    def __init__(self, path: str):
        self.path = path


class ReadonlyRoot(Operation):
    __slots__ = ()


class RootPropagation(Operation):
    """root.rootfsPropagation given to "/" last: the new root started out private."""

    __slots__ = ("flags",)

    def __init__(self, flags: int):
        self.flags = flags


class MountPlan:
    """The operations before pivot_root, the root switch, and those after it."""

    __slots__ = ("after_pivot", "before_pivot", "rootfs", "switch")

    def __init__(self, rootfs: str, before_pivot: list[Operation], switch: Operation,
                 after_pivot: list[Operation]):
        self.rootfs = rootfs
        self.before_pivot = before_pivot
        self.switch = switch
        self.after_pivot = after_pivot

    def binds(self) -> list[Bind]:
        return [op for op in self.before_pivot if isinstance(op, Bind)]


# -- planning -----------------------------------------------------------------------------
def plan_mounts(config: dict, bundle: str, in_userns: bool = False,
                no_pivot: bool = False) -> MountPlan:
    """The mount plan of `config`. `in_userns`: the init runs in a user namespace (devices
    are bound from the host)."""
    lx = config.get("linux") or {}
    rootfs = rootfs_path(config, bundle)
    wanted = PROPAGATION.get(lx.get("rootfsPropagation") or "", 0)
    # whatever "/" is to be in the end: it is set last (see RootPropagation)
    isolation = linux.MS_PRIVATE if wanted & linux.MS_PRIVATE else linux.MS_SLAVE
    before: list[Operation] = [IsolateFromHost(isolation | linux.MS_REC), BindRootfs(rootfs)]
    mounts = config.get("mounts") or []
    readonly_dev = False
    for index, m in enumerate(mounts):
        op = plan_mount(index, m, bundle, lx)
        if is_dev(op.destination) and op.flags & linux.MS_RDONLY and not op.flags & linux.MS_BIND:
            # /dev/pts, /dev/shm, the devices and links still have to be made in it
            readonly_dev = True
            op.flags &= ~linux.MS_RDONLY
        before.append(op)
    if not dev_is_bind_mounted(mounts):
        before.append(PopulateDev(plan_devices(lx), tuple(DEV_SYMLINKS), in_userns))
    cwd = (config.get("process") or {}).get("cwd")
    if cwd:
        before.append(MakeCwd(cwd))
    if readonly_dev:
        before.append(ReadonlyDev())
    switch = MoveRoot(rootfs) if no_pivot else PivotRoot(rootfs)
    after: list[Operation] = [MaskPath(p) for p in lx.get("maskedPaths") or []]
    after += [ReadonlyPath(p) for p in lx.get("readonlyPaths") or []]
    if config["root"].get("readonly"):
        after.append(ReadonlyRoot())
    if lx.get("rootfsPropagation"):
        after.append(RootPropagation(PROPAGATION[lx["rootfsPropagation"]]))
    return MountPlan(rootfs, before, switch, after)


def plan_mount(index: int, m: dict, bundle: str, lx: dict) -> Mount:
    """The operation for mounts[index]."""
    dest = m["destination"]
    fstype = m.get("type") or ""
    options = list(m.get("options") or [])
    flags, propagation, data, extensions = parse_options(options)
    recursive = recursive_attributes(options)
    idmapped = is_idmapped(m)
    common = (index, dest, flags, recursive, tuple(propagation), idmapped)
    if fstype == "bind" or flags & linux.MS_BIND:
        op = Bind(*common, source=bind_source(m, bundle), idmap_recursive="ridmap" in options,
                  uid_mappings=tuple(m.get("uidMappings") or lx.get("uidMappings") or ()),
                  gid_mappings=tuple(m.get("gidMappings") or lx.get("gidMappings") or ()))
        op.flags |= linux.MS_BIND
        return op
    if fstype == "cgroup":
        return CgroupMount(*common)
    if "tmpcopyup" in extensions and fstype == "tmpfs":
        return TmpfsCopyUp(*common, data=tuple(data))
    covered = fstype == "tmpfs" and not any(d.startswith("mode=") for d in data)
    return NewFilesystem(*common, fstype=fstype, source=m.get("source") or fstype or "none",
                         data=tuple(data), covered_mode=covered)


def plan_devices(lx: dict) -> tuple[Device, ...]:
    """The default devices (kept if the image has them), then linux.devices (replacing)."""
    devices = [_device(d, False, f"default device {d['path']}") for d in DEFAULT_DEVICES]
    devices += [_device(d, True, f"linux.devices[{i}] ({d['path']})")
                for i, d in enumerate(lx.get("devices") or [])]
    return tuple(devices)


def _device(dev: dict, replace: bool, label: str) -> Device:
    return Device(dev["path"], _DEVICE_KINDS[dev["type"]], dev.get("fileMode", 0o666) & 0o7777,
                  dev.get("major", 0), dev.get("minor", 0), dev.get("uid", 0), dev.get("gid", 0),
                  replace, label)
