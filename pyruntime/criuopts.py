"""What checkpoint and restore ask criu for, decided from plain data (the config, the
flags, a mountinfo text, the container's cgroup): runc 1.1's choices, one function each. The
commands themselves are in pyruntime.checkpoint.
"""

from __future__ import annotations

import dataclasses
import os

from pyruntime import criurpc
from pyruntime.errors import RuntimeUserError

DESCRIPTORS_FILE = "descriptors.json"
DEFAULT_IMAGE_DIR = "checkpoint"            # below the current directory, as runc has it
DUMP_LOG, RESTORE_LOG = "dump.log", "restore.log"
CRIU_CONFIG_ANNOTATION = "org.criu.config"
DEFAULT_CRIU_CONFIG = "/etc/criu/runc.conf"

CLONE_NEWNET = 0x40000000
# --empty-ns: the namespaces criu may make empty for hooks to fill; the network one always is
# (the runtime does not configure network devices, the hooks do)
EMPTY_NAMESPACES = {"network": CLONE_NEWNET}
# namespace given by path -> (criu's name, key criu knows it by, criu version needed)
EXTERNAL_NAMESPACES = {"network": ("net", "extRootNetNS", 31100),
                       "pid": ("pid", "extRootPidNS", 31500)}
LOG_LEVEL = 4


@dataclasses.dataclass
class CriuOptions:
    """runc's checkpoint and restore flags (those that reach criu)."""
    image_path: str = ""
    work_path: str = ""
    parent_path: str = ""
    leave_running: bool = False
    tcp_established: bool = False
    ext_unix_sk: bool = False
    shell_job: bool = False
    lazy_pages: bool = False
    status_fd: int = -1
    page_server: str = ""
    file_locks: bool = False
    pre_dump: bool = False
    manage_cgroups_mode: str = ""
    empty_ns: tuple[str, ...] = ()
    auto_dedup: bool = False
    lsm_profile: str = ""
    lsm_mount_context: str = ""


# -- flags -----------------------------------------------------------------------------------
def page_server(text: str) -> dict | None:
    """--page-server ADDRESS:PORT (an IPv6 address in brackets) as criu_page_server_info."""
    if not text:
        return None
    if text.startswith("["):
        address, bracket, rest = text[1:].partition("]")
        port = rest[1:] if bracket and rest.startswith(":") else ""
    else:
        address, _, port = text.rpartition(":")
        if ":" in address:          # an IPv6 address needs its brackets
            address = ""
    if not address or not port:
        raise RuntimeUserError(f"--page-server {text!r}: use ADDRESS:PORT")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise RuntimeUserError(f"--page-server {text!r}: invalid port number {port!r}")
    return {"address": address, "port": int(port)}


def cgroups_mode(text: str) -> int | None:
    """--manage-cgroups-mode as criu's enum; none given leaves criu's default (soft)."""
    if not text:
        return None
    if text not in criurpc.CGROUP_MODES:
        *others, last = criurpc.CGROUP_MODES
        raise RuntimeUserError(f"--manage-cgroups-mode {text!r}: use {', '.join(others)} or {last}")
    return criurpc.CGROUP_MODES[text]


def empty_ns_mask(names) -> int:
    mask = CLONE_NEWNET
    for name in names:
        if name not in EMPTY_NAMESPACES:
            raise RuntimeUserError(f"--empty-ns {name!r}: namespace is not supported "
                                   f"(only {', '.join(EMPTY_NAMESPACES)})")
        mask |= EMPTY_NAMESPACES[name]
    return mask


def image_directories(image_path: str, parent_path: str) -> tuple[str, str]:
    """The images directory (default ./checkpoint) and --parent-path, which names a previous
    dump relative to it, as criu takes it."""
    images = os.path.abspath(image_path or DEFAULT_IMAGE_DIR)
    if not parent_path:
        return images, ""
    if os.path.isabs(parent_path):
        raise RuntimeUserError(f"--parent-path {parent_path}: must be relative to the image path")
    if not os.path.isdir(os.path.join(images, parent_path)):
        raise RuntimeUserError(f"--parent-path {parent_path}: {os.path.join(images, parent_path)} "
                               "is not a directory")
    return images, parent_path


def check_flags(options: CriuOptions) -> None:
    """Every flag with a value, checked before anything is made."""
    page_server(options.page_server)
    cgroups_mode(options.manage_cgroups_mode)
    empty_ns_mask(options.empty_ns)
    if options.lazy_pages and options.status_fd != -1:
        check_status_fd(options.status_fd)


def check_status_fd(fd: int) -> None:
    import fcntl

    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except OSError as e:
        raise RuntimeUserError(f"--status-fd {fd}: {e.strerror}") from None
    if flags & os.O_ACCMODE == os.O_RDONLY:
        raise RuntimeUserError(f"--status-fd {fd}: not open for writing")


def criu_config_file(annotations: dict) -> str | None:
    """runc's rule: the file the annotation names, none if it is empty, else runc.conf."""
    if CRIU_CONFIG_ANNOTATION in annotations:
        return annotations[CRIU_CONFIG_ANNOTATION] or None
    return DEFAULT_CRIU_CONFIG


# -- what criu must know of the container ----------------------------------------------------
def rootfs_of(config: dict, bundle: str) -> str:
    path = (config.get("root") or {}).get("path", "rootfs")
    return os.path.normpath(os.path.join(bundle, path))


def is_bind(mount: dict) -> bool:
    options = mount.get("options") or []
    return mount.get("type") == "bind" or "bind" in options or "rbind" in options


def _has_namespace(config: dict, kind: str) -> bool:
    return any(ns.get("type") == kind for ns in (config.get("linux") or {}).get("namespaces") or [])


def namespace_path(config: dict, kind: str) -> str:
    for ns in (config.get("linux") or {}).get("namespaces") or []:
        if ns.get("type") == kind:
            return ns.get("path") or ""
    return ""


def parse_mountinfo(text: str) -> list[tuple[str, str]]:
    """(mount point, filesystem type) of each line of a /proc/<pid>/mountinfo."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)
        found.append((_unescape(fields[4]), fields[separator + 1]))
    return found


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1:i + 4]) == 3 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _below(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def cgroup_binds(config: dict, container_mounts: list[tuple[str, str]]) -> list[str]:
    """The cgroup hierarchies bound from the host into the container (a cgroup mount without
    a cgroup namespace): every cgroup filesystem at or below a cgroup mount's destination."""
    if _has_namespace(config, "cgroup"):
        return []               # real cgroup mounts, which criu dumps itself
    tops = [os.path.normpath(m["destination"]) for m in config.get("mounts") or []
            if m.get("type") == "cgroup" and m.get("destination")]
    return [point for point, fstype in container_mounts
            if fstype in ("cgroup", "cgroup2") and any(_below(point, top) for top in tops)]


def device_paths(config: dict) -> list[str]:
    from pyruntime.init.mountplan import DEFAULT_DEVICES

    paths = [d["path"] for d in DEFAULT_DEVICES]
    for device in (config.get("linux") or {}).get("devices") or []:
        if device.get("path") and device["path"] not in paths:
            paths.append(device["path"])
    return paths


def dump_external_mounts(config: dict, container_mounts: list[tuple[str, str]],
                         masked_files: list[str]) -> list[dict]:
    """Mounts whose source is outside the container, named by their place in it (the key
    the restore maps back to a source): binds, cgroup binds, masked files (the container's
    /dev/null bound over them) and devices."""
    mounts = [os.path.normpath(m["destination"]) for m in config.get("mounts") or []
              if is_bind(m) and m.get("destination")]
    mounts += cgroup_binds(config, container_mounts)
    entries = [{"key": path, "val": path} for path in mounts]
    entries += [{"key": path, "val": "/dev/null"} for path in masked_files]
    entries += [{"key": path, "val": path} for path in device_paths(config)]
    return _first_of_each_key(entries)


def restore_external_mounts(config: dict, bundle: str, cgroup_sources: dict[str, str]) -> list[dict]:
    """The sources of the external mounts on this host: a bind's source, the new cgroup for a
    cgroup bind (`cgroup_sources`: place in the container -> host directory), /dev/null for
    masked files, the host's device nodes."""
    entries = []
    for m in config.get("mounts") or []:
        if is_bind(m) and m.get("destination"):
            source = m.get("source") or ""
            entries.append({"key": os.path.normpath(m["destination"]),
                            "val": os.path.normpath(os.path.join(bundle, source))})
    entries += [{"key": point, "val": source} for point, source in cgroup_sources.items()]
    if (config.get("linux") or {}).get("maskedPaths"):
        entries.append({"key": "/dev/null", "val": "/dev/null"})
    entries += [{"key": path, "val": path} for path in device_paths(config)]
    return _first_of_each_key(entries)


def _first_of_each_key(entries: list[dict]) -> list[dict]:
    seen: set[str] = set()
    kept = []
    for entry in entries:
        if entry["key"] not in seen:
            seen.add(entry["key"])
            kept.append(entry)
    return kept


def cgroup_bind_sources(config: dict, manager) -> dict[str, str]:
    """Where the restored container's cgroup binds come from: its new cgroup, per hierarchy
    (named in the container after the host's mount point, as create binds them)."""
    if manager is None or _has_namespace(config, "cgroup"):
        return {}
    sources = {}
    for m in config.get("mounts") or []:
        if m.get("type") != "cgroup" or not m.get("destination"):
            continue
        top = os.path.normpath(m["destination"])
        if manager.mode == "v2":
            sources[top] = manager.dir
            continue
        for mount_point in sorted(set(manager.hierarchies.values())):
            sources[f"{top}/{os.path.basename(mount_point)}"] = \
                mount_point.rstrip("/") + "/" + manager.path.lstrip("/")
    return sources


def inherited_pipes(descriptors: list[str]) -> list[dict]:
    """The init's stdio pipes at dump time, each to be replaced by the same fd of criu (the
    runtime's own stdio) on restore."""
    return [{"key": name, "fd": fd} for fd, name in enumerate(descriptors)
            if isinstance(name, str) and "pipe:" in name]


def cgroup_roots(proc_cgroup: str) -> list[dict]:
    """criu's cgroup roots on a v1 host: each hierarchy's path of the process criu runs as
    (the restored container's new cgroup), from its /proc/<pid>/cgroup."""
    roots = []
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers:
            roots.append({"ctrl": controllers, "path": path})
    return roots


def common_options(options: CriuOptions, config: dict) -> dict:
    """The criu_opts both directions share."""
    opts = {
        "log_level": LOG_LEVEL, "manage_cgroups": True, "notify_scripts": True,
        "shell_job": options.shell_job, "tcp_established": options.tcp_established,
        "ext_unix_sk": options.ext_unix_sk, "file_locks": options.file_locks,
        "empty_ns": empty_ns_mask(options.empty_ns), "orphan_pts_master": True,
        "auto_dedup": options.auto_dedup, "lazy_pages": options.lazy_pages,
        "manage_cgroups_mode": cgroups_mode(options.manage_cgroups_mode),
        "config_file": criu_config_file(config.get("annotations") or {}),
    }
    return {k: v for k, v in opts.items() if v is not None}


def dump_options(options: CriuOptions, config: dict, bundle: str, pid: int, *, version: int,
                 external_ns_inodes: dict[str, int], freezer: str | None) -> dict:
    """criu_opts of a dump or pre-dump (without the fds and the external mounts)."""
    opts = common_options(options, config)
    opts.update(pid=pid, root=rootfs_of(config, bundle), leave_running=options.leave_running,
                log_file=DUMP_LOG)
    externals = []
    for kind, (criu_name, key, needed) in EXTERNAL_NAMESPACES.items():
        if kind in external_ns_inodes and version >= needed:
            externals.append(f"{criu_name}[{external_ns_inodes[kind]}]:{key}")
    if externals:
        opts["external"] = externals
    if freezer:
        opts["freeze_cgroup"] = freezer
    server = page_server(options.page_server)
    if server:
        opts["ps"] = server
    if options.parent_path:
        opts.update(parent_img=options.parent_path, track_mem=True)
    return opts


def restore_options(options: CriuOptions, config: dict, root: str) -> dict:
    """criu_opts of a restore (without the fds, mounts, namespaces and cgroup roots)."""
    opts = common_options(options, config)
    opts.update(root=root, evasive_devices=True, rst_sibling=True, log_file=RESTORE_LOG)
    if options.lsm_profile:
        opts["lsm_profile"] = options.lsm_profile
    if options.lsm_mount_context:
        opts["lsm_mount_context"] = options.lsm_mount_context
    return opts


def joined_namespaces(config: dict) -> list[dict]:
    """Namespaces given by path that criu joins on restore (network and PID ones are handed
    over as external namespaces instead)."""
    from pyruntime import linux

    joined = []
    for ns in (config.get("linux") or {}).get("namespaces") or []:
        kind, path = ns.get("type"), ns.get("path")
        if not path or kind in EXTERNAL_NAMESPACES:
            continue
        if kind == "cgroup":
            raise RuntimeUserError("linux.namespaces: criu cannot restore into a cgroup "
                                   "namespace given by path")
        joined.append({"ns": linux.NAMESPACES[kind][1], "ns_file": path})
    return joined
