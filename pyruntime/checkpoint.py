"""`checkpoint` and `restore`: a running container saved into CRIU images and brought back
from them, the way runc 1.1 does it.

The runtime talks to `criu swrk` over criu's RPC protocol (pyruntime.criurpc) and asks for
what runc asks for (pyruntime.criuopts): the container's init tree and its rootfs; its bind
mounts, masked files, devices and (without a cgroup namespace) cgroup binds as external
mounts; network and PID namespaces given by path as external namespaces; its cgroup frozen
while it is dumped; the same log files and criu configuration file. The init's stdio is kept
in the images directory as runc's descriptors.json, so that a restore hands pipes back alike.

A checkpoint that succeeds ends the container (criu has ended its processes; it is deleted,
as runc deletes it) unless --leave-running or --pre-dump keep it. A restore makes a new
container from the bundle, as create would, and criu brings its processes back into it: the
prestart and createRuntime hooks run once criu has made the namespaces ("setup-namespaces"),
and the container is recorded as running once the processes are back ("post-restore").
"""

from __future__ import annotations

import json
import os

from pyruntime import criuopts, criurpc, log
from pyruntime.errors import InvalidState, RuntimeUserError

WORK_DIR = "criu.work"                  # a checkpoint's, below the state directory
CRIU_ROOT = "criu-root"                 # a restore's rootfs for criu, below the state directory
MIN_CRIU = 30000                        # the version request itself is criu 3.0's
CGROUP2_FREEZER_CRIU = 31400
STATUS_NOTIFY_CRIU = 31500              # from here criu says "status-ready" instead
LSM_MOUNT_CONTEXT_CRIU = 31600


# -- talking to criu -------------------------------------------------------------------------
def criu_version(criu: str) -> int:
    found = criurpc.version(criu)
    if found < MIN_CRIU:
        raise RuntimeUserError(f"--criu {criu}: criu {found} is too old, 3.0 or newer is needed")
    return found


def serve(swrk: criurpc.Swrk, request: dict, on_notify=None) -> dict:
    """One request to a started criu, to its final answer; criu is stopped on any failure."""
    try:
        answer = swrk.call(request, on_notify)
    except BaseException:
        swrk.abort()
        raise
    swrk.finish(request["type"])
    return answer


def check_features(criu: str, opts: dict, pass_fds, log_path: str, wanted: dict, flag: str) -> None:
    """Ask criu whether it and the kernel can do what `flag` needs."""
    swrk = criurpc.Swrk(criu, pass_fds, log_path)
    try:
        answer = serve(swrk, {"type": criurpc.FEATURE_CHECK, "opts": opts, "features": wanted})
    except criurpc.CriuFailed as e:
        raise RuntimeUserError(f"{flag}: {e.message}") from None
    have = answer.get("features") or {}
    missing = [name for name in wanted if not have.get(name)]
    if missing:
        raise RuntimeUserError(f"{flag}: criu or the kernel lacks {', '.join(missing)}")


def _open_dir(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _make_dir(path: str, flag: str) -> None:
    try:
        os.makedirs(path, 0o700, exist_ok=True)
    except OSError as e:
        raise RuntimeUserError(f"{flag} {path}: cannot create it: {e.strerror}") from None


# -- checkpoint ------------------------------------------------------------------------------
def checkpoint(root: str, container_id: str, options: criuopts.CriuOptions,
               criu: str = "criu") -> None:
    from pyruntime import lifecycle
    from pyruntime.state import PAUSED, RUNNING, ContainerDir, status_of

    if os.geteuid() != 0:
        log.warn("checkpoint is untested with rootless containers")   # as runc says
    with ContainerDir(root, container_id).lock() as cdir:
        state = cdir.load()
        status = status_of(cdir, state)
        if status not in (RUNNING, PAUSED):
            raise InvalidState(f"container {container_id} cannot be checkpointed: it is {status}")
        images, _ = criuopts.image_directories(options.image_path, options.parent_path)
        criuopts.check_flags(options)
        version = criu_version(criu)
        work = os.path.abspath(options.work_path or os.path.join(cdir.path, WORK_DIR))
        _make_dir(images, "--image-path")
        _make_dir(work, "--work-path")
        dump(state, options, criu, version, images, work)
        if not (options.leave_running or options.pre_dump):
            lifecycle.destroy(cdir, state, status_of(cdir, state))


def dump(state, options: criuopts.CriuOptions, criu: str, version: int, images: str,
         work: str) -> None:
    config, pid = state.config, state.pid
    opts = criuopts.dump_options(options, config, state.bundle, pid, version=version,
                                 external_ns_inodes=_external_ns_inodes(config),
                                 freezer=_freezer(state.cgroup, version))
    log_path = os.path.join(work, criuopts.DUMP_LOG)
    dirs = [_open_dir(images), _open_dir(work)]
    pass_fds = list(dirs)
    status_fd = options.status_fd if options.lazy_pages else -1
    try:
        opts.update(images_dir_fd=dirs[0], work_dir_fd=dirs[1])
        if options.pre_dump:
            check_features(criu, opts, pass_fds, log_path, {"mem_track": True}, "--pre-dump")
        if options.lazy_pages:
            check_features(criu, opts, pass_fds, log_path, {"lazy_pages": True}, "--lazy-pages")
            if status_fd != -1 and version < STATUS_NOTIFY_CRIU:
                opts["status_fd"] = status_fd       # an older criu writes it itself
                pass_fds.append(status_fd)
                status_fd = -1
        if not options.pre_dump:
            opts["ext_mnt"] = criuopts.dump_external_mounts(config, _container_mounts(pid),
                                                            _masked_files(config, pid))
            write_descriptors(images, _stdio_of(pid))

        def on_notify(notify: dict, _fds) -> None:
            nonlocal status_fd
            if notify.get("script") == "status-ready" and status_fd != -1:
                # the lazy-pages server is ready: tell whoever waits on --status-fd
                try:
                    os.write(status_fd, b"\0")
                finally:
                    os.close(status_fd)
                    status_fd = -1

        request = {"type": criurpc.PRE_DUMP if options.pre_dump else criurpc.DUMP, "opts": opts}
        serve(criurpc.Swrk(criu, pass_fds, log_path), request, on_notify)
    finally:
        for fd in dirs:
            os.close(fd)


def _external_ns_inodes(config: dict) -> dict[str, int]:
    inodes = {}
    for kind in criuopts.EXTERNAL_NAMESPACES:
        path = criuopts.namespace_path(config, kind)
        if path:
            try:
                inodes[kind] = os.stat(path).st_ino
            except OSError as e:
                raise RuntimeUserError(f"linux.namespaces: {kind} namespace {path}: "
                                       f"{e.strerror}") from None
    return inodes


def _freezer(cgroup: dict, version: int) -> str | None:
    """The freezer cgroup criu stops the container with (without one it uses ptrace)."""
    if not cgroup:
        return None
    from pyruntime import cgroups

    manager = cgroups.saved_manager(cgroup)
    if manager.mode == "v2":
        return manager.dir if version >= CGROUP2_FREEZER_CRIU else None
    return manager.dir("freezer")


def _container_mounts(pid: int) -> list[tuple[str, str]]:
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            return criuopts.parse_mountinfo(f.read())
    except OSError:
        return []


def _masked_files(config: dict, pid: int) -> list[str]:
    """Masked paths that are files in the container (the directories get a tmpfs, which
    criu dumps itself)."""
    import stat

    files = []
    for path in (config.get("linux") or {}).get("maskedPaths") or []:
        try:
            mode = os.stat(f"/proc/{pid}/root/{path.lstrip('/')}").st_mode
        except OSError:
            continue
        if not stat.S_ISDIR(mode):
            files.append(path)
    return files


def _stdio_of(pid: int) -> list[str]:
    found = []
    for fd in range(3):
        try:
            found.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            found.append("")
    return found


def write_descriptors(images: str, descriptors: list[str]) -> None:
    fd = os.open(os.path.join(images, criuopts.DESCRIPTORS_FILE),
                 os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(descriptors, f)


def read_descriptors(images: str) -> list[str]:
    name = criuopts.DESCRIPTORS_FILE
    if not os.path.isdir(images):
        raise RuntimeUserError(f"--image-path {images}: no such directory")
    try:
        with open(os.path.join(images, name)) as f:
            found = json.load(f)
    except FileNotFoundError:
        raise RuntimeUserError(f"--image-path {images}: not a checkpoint ({name} is missing)") from None
    except (OSError, ValueError) as e:
        raise RuntimeUserError(f"--image-path {images}: cannot read {name}: {e}") from None
    if not isinstance(found, list):
        raise RuntimeUserError(f"--image-path {images}: {name} is not a list")
    return found


# -- restore ---------------------------------------------------------------------------------
def restore(root: str, container_id: str, bundle: str, options: criuopts.CriuOptions, *,
            criu: str = "criu", console_socket: str | None = None, pid_file: str | None = None,
            detach: bool = False, no_subreaper: bool = False,
            cgroup_manager: str = "cgroupfs") -> int:
    """Bring the checkpoint in --image-path back as the container `container_id` of the bundle;
    in the foreground, wait for it and return its exit code (then delete it), as `run` does."""
    from pyruntime import console, hostprocess, lifecycle, linux, spec
    from pyruntime.state import check_id

    check_id(container_id)
    bundle = os.path.abspath(bundle)
    config = spec.load_config(bundle)
    if pid_file:
        lifecycle.check_pid_file_dir(pid_file)
    images = os.path.abspath(options.image_path or criuopts.DEFAULT_IMAGE_DIR)
    job = Restore(root, container_id, bundle, config, options, criu, images, cgroup_manager)
    if os.geteuid() != 0:
        log.warn("restore is untested with rootless containers")     # as runc says
    version = criu_version(criu)
    if options.lsm_mount_context and version < LSM_MOUNT_CONTEXT_CRIU:
        raise RuntimeUserError("--lsm-mount-context needs criu 3.16 or newer")
    _make_dir(job.work, "--work-path")
    if not detach and not no_subreaper:
        linux.set_child_subreaper()
    terminal = bool((config.get("process") or {}).get("terminal"))
    job.console = console.connect_console(console_socket, terminal)
    try:
        state = job.run(pid_file)
    finally:
        if job.console is not None:
            job.console.close()
    if detach:
        return 0
    try:
        return hostprocess.wait_forwarding_signals(state.pid)
    finally:
        lifecycle.delete(root, container_id, force=True)


class Restore:
    """One restore: the new container (state directory, cgroup), criu's request, and what
    criu tells as it goes. Every flag and the checkpoint itself are checked on construction,
    before anything is made."""

    def __init__(self, root: str, container_id: str, bundle: str, config: dict,
                 options: criuopts.CriuOptions, criu: str, images: str, cgroup_manager: str):
        self.root, self.id, self.bundle, self.config = root, container_id, bundle, config
        self.options, self.criu, self.images = options, criu, images
        self.cgroup_manager = cgroup_manager
        self.descriptors = read_descriptors(images)
        criuopts.check_flags(options)
        self.base_opts = criuopts.restore_options(options, config, root="")
        self.joined = criuopts.joined_namespaces(config)
        # by default the images directory, as criu has it: a failed restore removes the
        # state directory, and the log must outlive it
        self.work = os.path.abspath(options.work_path or images)
        self.console = None
        self.state = None
        self.cdir = None
        self.undo = None

    @property
    def log_path(self) -> str:
        return os.path.join(self.work, criuopts.RESTORE_LOG)

    def run(self, pid_file: str | None):
        from pyruntime import lifecycle
        from pyruntime.rollback import Rollback
        from pyruntime.state import ContainerDir, ContainerState, utc_now

        manager = self._cgroup_manager()
        self.cdir = ContainerDir(self.root, self.id)
        self.cdir.make()
        fds: list[int] = []
        with Rollback() as self.undo:
            self.undo.defer("unlock the state directory", self.cdir.unlock)
            self.undo.push("remove state directory", self.cdir.remove)
            self.undo.defer("close the fds passed to criu", lambda: _close_all(fds))
            self.cdir.lock()
            self.state = ContainerState(
                id=self.id, bundle=self.bundle, config=self.config, created=utc_now(),
                owner=_owner(), cgroup=manager.to_dict() if manager else {},
                extra={"cgroupManager": self.cgroup_manager, "restoredFrom": self.images})
            self.cdir.save(self.state)
            if manager is not None:
                self._make_cgroup(manager)
            criu_root = _mount_rootfs(self.cdir.path, criuopts.rootfs_of(self.config, self.bundle),
                                      self.undo)
            opts = self._request_options(criu_root, manager, fds)
            swrk = criurpc.Swrk(self.criu, fds, self.log_path, inherit_stdio=True)
            try:
                if manager is not None:
                    self._enter_cgroup(manager, swrk.pid, opts)
            except BaseException:
                swrk.abort()
                raise
            answer = serve(swrk, {"type": criurpc.RESTORE, "opts": opts}, self.notify)
            _unmount_rootfs(self.cdir.path)     # the restored mount namespace has its own copy
            self.record((answer.get("restore") or {}).get("pid", 0))
            if self.state.creating:
                raise RuntimeUserError(f"criu restored no process; log file: {self.log_path}")
            if pid_file:
                lifecycle.write_pid_file(pid_file, self.state.pid)
            return self.state

    def _cgroup_manager(self):
        if self.cgroup_manager == "disabled":
            return None
        from pyruntime import cgroups

        return cgroups.open_manager(cgroups.resolve_path(
            (self.config.get("linux") or {}).get("cgroupsPath"), self.id))

    def _make_cgroup(self, manager) -> None:
        lx = self.config.get("linux") or {}
        if manager.stops_processes():
            raise RuntimeUserError(f"cannot restore a container into the frozen cgroup {manager.path}")
        manager.create(lx.get("resources"), linux_devices=lx.get("devices"))
        self.undo.push("remove cgroup", manager.undo_create)

    def _request_options(self, criu_root: str, manager, fds: list[int]) -> dict:
        """criu_opts of the restore; the fds it opens are appended to `fds`."""
        fds += [_open_dir(self.images), _open_dir(self.work)]
        mounts = criuopts.restore_external_mounts(self.config, self.bundle,
                                                  criuopts.cgroup_bind_sources(self.config, manager))
        opts = dict(self.base_opts, root=criu_root, images_dir_fd=fds[0], work_dir_fd=fds[1],
                    ext_mnt=mounts, inherit_fd=criuopts.inherited_pipes(self.descriptors))
        if self.joined:
            opts["join_ns"] = self.joined
        for kind, (_, key, _version) in criuopts.EXTERNAL_NAMESPACES.items():
            path = criuopts.namespace_path(self.config, kind)
            if path:
                fds.append(_open_namespace(kind, path))
                opts["inherit_fd"].append({"key": key, "fd": fds[-1]})
        return opts

    @staticmethod
    def _enter_cgroup(manager, criu_pid: int, opts: dict) -> None:
        """criu restores into the cgroup it runs in; on v1 it is also told each hierarchy's
        path, as runc tells it."""
        manager.add_process(criu_pid)
        if manager.mode != "v2":
            with open(f"/proc/{criu_pid}/cgroup") as f:
                opts["cg_root"] = criuopts.cgroup_roots(f.read())

    # -- what criu tells as it goes --------------------------------------------------------
    def notify(self, notify: dict, fds: list[int]) -> None:
        script = notify.get("script")
        if script == "setup-namespaces":
            self._run_hooks(notify.get("pid", 0))
        elif script == "post-restore":
            self.record(notify.get("pid", 0))
        elif script == "orphan-pts-master" and fds and self.console is not None:
            import socket

            socket.send_fds(self.console, [b"orphan-pts-master"], [fds[0]])

    def _run_hooks(self, pid: int) -> None:
        from pyruntime import hooks
        from pyruntime.state import CREATED, oci_state

        self.state.pid = pid
        # from here on hooks may have made things outside the container: a failed restore
        # lets the poststop hooks undo them, as a failed create does
        self.undo.push("run poststop hooks", self._poststop_after_failure)
        hook_state = oci_state(self.state, CREATED)       # as create gives them
        hooks.run_hooks(self.config, "prestart", hook_state)
        hooks.run_hooks(self.config, "createRuntime", hook_state)

    def _poststop_after_failure(self) -> None:
        from pyruntime import hooks, hostprocess
        from pyruntime.state import STOPPED, oci_state

        hostprocess.kill_and_wait(self.state.pid)
        hooks.run_hooks(self.config, "poststop", oci_state(self.state, STOPPED), fatal=False)

    def record(self, pid: int) -> None:
        """The processes are back: the container runs with `pid` as its init."""
        from pyruntime import hostprocess
        from pyruntime.state import process_start_time

        if not self.state.creating or pid <= 0:
            return
        self.state.pid = pid
        self.state.pid_start_time = process_start_time(pid) or 0
        self.state.creating = False
        self.undo.push("stop restored init", lambda: hostprocess.kill_and_wait(pid))
        self.cdir.save(self.state)


def _owner() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _open_namespace(kind: str, path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise RuntimeUserError(f"linux.namespaces: {kind} namespace {path}: {e.strerror}") from None


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _mount_rootfs(state_dir: str, rootfs: str, undo) -> str:
    """criu restores into a root that is a mount point whose parent is not mounted over:
    the rootfs bound to a directory of the state directory."""
    from pyruntime import linux

    target = os.path.join(state_dir, CRIU_ROOT)
    os.mkdir(target, 0o755)
    undo.push("unmount the rootfs bound for criu", lambda: _unmount_rootfs(state_dir))
    try:
        linux.mount(rootfs, target, None, linux.MS_BIND | linux.MS_REC)
    except OSError as e:
        raise RuntimeUserError(f"root.path {rootfs}: cannot bind it for criu: {e.strerror}") from None
    return target


def _unmount_rootfs(state_dir: str) -> None:
    from pyruntime import linux

    target = os.path.join(state_dir, CRIU_ROOT)
    if not os.path.isdir(target):
        return
    try:
        linux.umount2(target, linux.MNT_DETACH)
    except OSError:
        pass                    # not mounted: the bind itself had failed
    os.rmdir(target)
