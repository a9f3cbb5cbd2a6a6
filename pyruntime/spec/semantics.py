"""Checks on config.json that a JSON Schema cannot express.

Each check is a small function over an already schema-valid config that yields
(json_path, message) problems; `semantic_problems` runs them all. Only the bundle and hook checks
look at the filesystem.
"""

from __future__ import annotations

import os
TYPE_CHECKING = False   # typing itself is not imported on the hot path
if TYPE_CHECKING:
    from collections.abc import Iterator

from pyruntime.spec import jsonpath

Problem = tuple[str, str]

# Hooks whose path resolves in the runtime's mount namespace, so it can be checked from here.
# startContainer hooks resolve inside the container and are checked when they run.
_HOST_HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")

# Sysctls that only make sense in a namespace of the container's own (runc's rules).
_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}

_ERRNO_ACTIONS = {"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"}

SUPPORTED_MAJOR = 1


def _new_namespaces(config: dict) -> dict[str, int]:
    """Namespace type -> index in linux.namespaces, for namespaces the container creates."""
    found = {}
    for index, ns in enumerate(config.get("linux", {}).get("namespaces", [])):
        if "path" not in ns:
            found.setdefault(ns["type"], index)
    return found


def _listed_namespaces(config: dict) -> set[str]:
    return {ns["type"] for ns in config.get("linux", {}).get("namespaces", [])}


def check_oci_version(config: dict) -> Iterator[Problem]:
    major = int(config["ociVersion"].split(".", 1)[0])
    if major != SUPPORTED_MAJOR:
        yield ("ociVersion", f"unsupported version {config['ociVersion']!r}: this runtime implements 1.x")


def check_root(config: dict, bundle: str | None) -> Iterator[Problem]:
    if bundle is None:
        return
    path = config["root"]["path"]
    full = path if os.path.isabs(path) else os.path.join(bundle, path)
    if not os.path.exists(full):
        yield ("root.path", f"{full} does not exist")
    elif not os.path.isdir(full):
        yield ("root.path", f"{full} is not a directory")


def check_process(config: dict) -> Iterator[Problem]:
    process = config.get("process")
    if process is None:
        return
    if "args" not in process:
        yield ("process.args", "is required: at least one entry names the program to run")
    seen: dict[str, int] = {}
    for index, rlimit in enumerate(process.get("rlimits", [])):
        kind = rlimit["type"]
        if kind in seen:
            yield (f"process.rlimits[{index}].type", f"{kind} is listed twice (first at process.rlimits[{seen[kind]}])")
        seen.setdefault(kind, index)
        if rlimit["soft"] > rlimit["hard"]:
            yield (f"process.rlimits[{index}].soft",
                   f"soft limit {rlimit['soft']} is above the hard limit {rlimit['hard']}")
    for index, entry in enumerate(process.get("env", [])):
        if "=" not in entry or entry.startswith("="):
            yield (f"process.env[{index}]", f"expected KEY=value, got {entry!r}")


def check_namespaces(config: dict) -> Iterator[Problem]:
    first: dict[str, int] = {}
    for index, ns in enumerate(config.get("linux", {}).get("namespaces", [])):
        kind = ns["type"]
        if kind in first:
            yield (f"linux.namespaces[{index}].type",
                   f"namespace type {kind!r} is listed twice (first at linux.namespaces[{first[kind]}])")
        first.setdefault(kind, index)


def check_id_mappings(config: dict) -> Iterator[Problem]:
    linux = config.get("linux", {})
    listed = _listed_namespaces(config)
    has_uid, has_gid = bool(linux.get("uidMappings")), bool(linux.get("gidMappings"))
    if "user" in _new_namespaces(config):
        if not has_uid:
            yield ("linux.uidMappings", "a new user namespace needs uidMappings")
        if not has_gid:
            yield ("linux.gidMappings", "a new user namespace needs gidMappings")
    elif "user" not in listed:
        for key, present in (("uidMappings", has_uid), ("gidMappings", has_gid)):
            if present:
                yield (f"linux.{key}", "id mappings are set but linux.namespaces has no user namespace")


def check_uts(config: dict) -> Iterator[Problem]:
    # Setting the name in the runtime's own uts namespace would rename the host.
    if "uts" in _listed_namespaces(config):
        return
    for key in ("hostname", "domainname"):
        if config.get(key):
            yield (key, "can only be set when linux.namespaces has a uts namespace")


_NSEC_PER_SEC = 10**9


def check_time_offsets(config: dict) -> Iterator[Problem]:
    offsets = config.get("linux", {}).get("timeOffsets")
    if offsets and "time" not in _new_namespaces(config):
        yield ("linux.timeOffsets", "can only be set with a new time namespace in linux.namespaces")
    for clock, offset in (offsets or {}).items():
        # the kernel takes whole seconds apart: a second's worth of nanoseconds is refused
        if offset.get("nanosecs", 0) >= _NSEC_PER_SEC:
            yield (f"linux.timeOffsets.{clock}.nanosecs",
                   f"must be below {_NSEC_PER_SEC} (put whole seconds in secs), got {offset['nanosecs']}")


def check_scheduler(config: dict) -> Iterator[Problem]:
    """process.scheduler against what sched_setattr(2) accepts for each policy (runc's rules,
    and the kernel's for real-time priorities and deadline parameters)."""
    wanted = (config.get("process") or {}).get("scheduler")
    if not wanted:
        return
    from pyruntime.init import scheduler as sched

    where = "process.scheduler"
    policy = wanted["policy"]
    keep_params = "SCHED_FLAG_KEEP_PARAMS" in (wanted.get("flags") or [])
    nice, priority = wanted.get("nice", 0), wanted.get("priority", 0)
    if policy in sched.FAIR and not sched.NICE_MIN <= nice <= sched.NICE_MAX:
        yield (f"{where}.nice", f"must be from {sched.NICE_MIN} to {sched.NICE_MAX} for {policy}, got {nice}")
    if policy in sched.REALTIME:
        if not keep_params and not sched.RT_PRIORITY_MIN <= priority <= sched.RT_PRIORITY_MAX:
            yield (f"{where}.priority", f"must be from {sched.RT_PRIORITY_MIN} to "
                   f"{sched.RT_PRIORITY_MAX} for {policy}, got {priority}")
    elif priority:
        yield (f"{where}.priority", f"can only be set for SCHED_FIFO or SCHED_RR, not {policy}")
    if policy != "SCHED_DEADLINE":
        for key in ("runtime", "deadline", "period"):
            if wanted.get(key):
                yield (f"{where}.{key}", f"can only be set for SCHED_DEADLINE, not {policy}")
    elif not keep_params:
        yield from _deadline_problems(wanted, where)


def _deadline_problems(wanted: dict, where: str) -> Iterator[Problem]:
    from pyruntime.init import scheduler as sched

    runtime, deadline, period = (wanted.get(k, 0) for k in ("runtime", "deadline", "period"))
    for key, value in (("deadline", deadline), ("period", period)):
        if value >= sched.DL_LIMIT:
            yield (f"{where}.{key}", f"must be below 2^63 ns, got {value}")
            return
    if runtime < sched.DL_RUNTIME_MIN:
        yield (f"{where}.runtime", f"must be at least {sched.DL_RUNTIME_MIN} ns for SCHED_DEADLINE, got {runtime}")
    elif deadline < runtime:
        yield (f"{where}.deadline", f"must be at least the runtime ({runtime} ns) for SCHED_DEADLINE, got {deadline}")
    elif period and period < deadline:
        yield (f"{where}.period", f"must be 0 (the deadline) or at least the deadline ({deadline} ns), got {period}")


def check_memory_policy(config: dict) -> Iterator[Problem]:
    """linux.memoryPolicy: the node list, and the mode/nodes/flags combinations the kernel
    refuses (set_mempolicy(2))."""
    policy = config.get("linux", {}).get("memoryPolicy")
    if not policy:
        return
    from pyruntime.init import mempolicy

    where = "linux.memoryPolicy"
    mode, flags = policy["mode"], set(policy.get("flags") or [])
    try:
        nodes = mempolicy.parse_nodes(policy.get("nodes", ""))
    except ValueError as e:
        yield (f"{where}.nodes", str(e))
        return
    if nodes and mode in mempolicy.NO_NODES:
        yield (f"{where}.nodes", f"must be empty for {mode}")
    elif not nodes and mode in mempolicy.NEED_NODES:
        yield (f"{where}.nodes", f"{mode} needs at least one node")
    if {"MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"} <= flags:
        yield (f"{where}.flags", "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other")
    elif mode == "MPOL_LOCAL" and flags & {"MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"}:
        yield (f"{where}.flags", "MPOL_LOCAL takes no node flags")
    if "MPOL_F_NUMA_BALANCING" in flags and mode not in mempolicy.BALANCING_MODES:
        yield (f"{where}.flags", f"MPOL_F_NUMA_BALANCING needs MPOL_BIND or MPOL_PREFERRED_MANY, not {mode}")


def check_net_devices(config: dict) -> Iterator[Problem]:
    """linux.netDevices: a network namespace to move them into, and names the kernel takes."""
    devices = config.get("linux", {}).get("netDevices")
    if not devices:
        return
    from pyruntime import netdevices

    if "network" not in _listed_namespaces(config):
        yield ("linux.netDevices", "moving network devices needs a network namespace in linux.namespaces")
    taken: dict[str, str] = {}
    for host_name, device in devices.items():
        where = jsonpath.child("linux.netDevices", host_name)
        problem = netdevices.name_problem(host_name, template=False)
        if problem:
            yield (where, f"host device name {host_name!r} {problem}")
            continue
        name = device.get("name") or host_name
        problem = netdevices.name_problem(name, template=True)
        if problem:
            yield (jsonpath.child(where, "name"), f"{name!r} {problem}")
        elif "%" not in name and name in taken:
            yield (jsonpath.child(where, "name") if device.get("name") else where,
                   f"{taken[name]} is also named {name!r} in the container")
        else:
            taken.setdefault(name, jsonpath.child("linux.netDevices", host_name))


# sysctls that set what `hostname` and `domainname` also set: both given and different, the
# container's name would depend on which is applied last (runc refuses it)
_UTS_SYSCTLS = {"kernel.hostname": "hostname", "kernel.domainname": "domainname"}


def check_sysctl(config: dict) -> Iterator[Problem]:
    listed = _listed_namespaces(config)
    for key, value in config.get("linux", {}).get("sysctl", {}).items():
        field = _UTS_SYSCTLS.get(key)
        if field and config.get(field) and config[field] != value:
            yield (jsonpath.child("linux.sysctl", key),
                   f"{value!r} conflicts with {field} {config[field]!r}")
        path = jsonpath.child("linux.sysctl", key)
        if key.startswith("net.") and "network" not in listed:
            yield (path, "network sysctls need a network namespace in linux.namespaces")
        elif (key in _IPC_SYSCTLS or key.startswith("fs.mqueue.")) and "ipc" not in listed:
            yield (path, "ipc sysctls need an ipc namespace in linux.namespaces")


def check_cgroups_path(config: dict) -> Iterator[Problem]:
    path = config.get("linux", {}).get("cgroupsPath")
    if path and ".." in path.split("/"):
        yield ("linux.cgroupsPath", f"must not contain '..' components, got {path!r}")


def check_mounts(config: dict) -> Iterator[Problem]:
    has_userns = "user" in _listed_namespaces(config)
    for index, mount in enumerate(config.get("mounts", [])):
        options = mount.get("options", [])
        if ("idmap" in options or "ridmap" in options) and not mount.get("uidMappings") and not has_userns:
            yield (f"mounts[{index}].options",
                   "idmap needs uidMappings/gidMappings on the mount or a user namespace")


def check_hooks(config: dict) -> Iterator[Problem]:
    hooks = config.get("hooks", {})
    for kind in _HOST_HOOK_KINDS:
        for index, hook in enumerate(hooks.get(kind, [])):
            path = hook["path"]
            where = f"hooks.{kind}[{index}].path"
            if not os.path.isfile(path):
                yield (where, f"{path} does not exist or is not a file")
            elif not os.access(path, os.X_OK):
                yield (where, f"{path} is not executable")


def check_seccomp(config: dict) -> Iterator[Problem]:
    seccomp = config.get("linux", {}).get("seccomp")
    if not seccomp:
        return
    if "defaultErrnoRet" in seccomp and seccomp["defaultAction"] not in _ERRNO_ACTIONS:
        yield ("linux.seccomp.defaultErrnoRet", f"is not allowed with defaultAction {seccomp['defaultAction']}")
    for index, rule in enumerate(seccomp.get("syscalls", [])):
        if "errnoRet" in rule and rule["action"] not in _ERRNO_ACTIONS:
            yield (f"linux.seccomp.syscalls[{index}].errnoRet", f"is not allowed with action {rule['action']}")
    yield from _seccomp_notify_problems(seccomp)


def _seccomp_notify_problems(seccomp: dict) -> Iterator[Problem]:
    """SCMP_ACT_NOTIFY hands syscalls to an agent, which gets the listener only once the init
    has passed it on: not as the default action, nor for the call that passes it (runc refuses
    both, for its own passing call), and not without an agent to hand it to."""
    if seccomp["defaultAction"] == "SCMP_ACT_NOTIFY":
        yield ("linux.seccomp.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action: the "
               "init's own syscalls would wait for an agent that has no listener yet")
    notifying = [i for i, rule in enumerate(seccomp.get("syscalls", []))
                 if rule["action"] == "SCMP_ACT_NOTIFY"]
    if not notifying:
        return
    from pyruntime.init.seccomp import NOTIFY_REFUSED

    if not seccomp.get("listenerPath"):
        yield ("linux.seccomp.listenerPath",
               f"is required: linux.seccomp.syscalls[{notifying[0]}] uses SCMP_ACT_NOTIFY")
    for index in notifying:
        for name in seccomp["syscalls"][index]["names"]:
            if name in NOTIFY_REFUSED:
                yield (f"linux.seccomp.syscalls[{index}].names",
                       f"SCMP_ACT_NOTIFY cannot be used for {name}: the init passes the listener "
                       "to the runtime with it")


def check_cpu(config: dict) -> Iterator[Problem]:
    cpu = config.get("linux", {}).get("resources", {}).get("cpu", {})
    quota, burst = cpu.get("quota"), cpu.get("burst")
    if quota is not None and burst is not None and quota > 0 and burst > quota:
        yield ("linux.resources.cpu.burst", f"must not exceed quota {quota}, got {burst}")


def deprecations(config: dict) -> list[Problem]:
    """What a valid config does that the spec deprecates: worth a warning, not a refusal."""
    return [(f"mounts[{index}].destination",
             f"relative path {mount['destination']!r} is deprecated; taken as "
             f"{'/' + mount['destination']!r}")
            for index, mount in enumerate(config.get("mounts", []))
            if not mount.get("destination", "/").startswith("/")]


def semantic_problems(config: dict, bundle: str | None = None) -> list[Problem]:
    """Every semantic problem of a schema-valid config, in document order of the checks."""
    problems: list[Problem] = []
    problems += check_oci_version(config)
    problems += check_root(config, bundle)
    problems += check_process(config)
    problems += check_mounts(config)
    problems += check_hooks(config)
    problems += check_uts(config)
    problems += check_namespaces(config)
    problems += check_id_mappings(config)
    problems += check_time_offsets(config)
    problems += check_net_devices(config)
    problems += check_memory_policy(config)
    problems += check_scheduler(config)
    problems += check_cgroups_path(config)
    problems += check_sysctl(config)
    problems += check_cpu(config)
    problems += check_seccomp(config)
    return problems
