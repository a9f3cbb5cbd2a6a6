"""The container's filesystem view, built inside its new mount namespace: the executor of the
mount plan (init/mountplan.py), every kernel call made through an init/kernel.py Kernel.

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
from pyruntime.init import mountplan as mp
from pyruntime.init.inroot import fd_path
from pyruntime.init.kernel import KERNEL, Kernel

# statvfs f_flag bits -> mount attributes: what a mount has now (for locked flags).
_STATVFS_ATTRS = {
    os.ST_RDONLY: linux.MOUNT_ATTR_RDONLY, os.ST_NOSUID: linux.MOUNT_ATTR_NOSUID,
    os.ST_NODEV: linux.MOUNT_ATTR_NODEV, os.ST_NOEXEC: linux.MOUNT_ATTR_NOEXEC,
}


def set_bind_flags(kernel: Kernel, mount_fd: int, flags: int) -> None:
    """Give the mount `mount_fd` the per-mount flags of a bind's options. A plain bind keeps
    its source's flags. A mount inherited into a user namespace cannot lose ro, nosuid, nodev
    or noexec (the kernel locks them): those it has stay, as a bind remount must keep them."""
    if not flags & ~(linux.MS_BIND | linux.MS_REC | linux.MS_REMOUNT):
        return
    attr_set, attr_clr = mp.mount_attributes(flags)
    try:
        kernel.mount_setattr(mount_fd, attr_set, attr_clr)
    except PermissionError:
        f_flag = kernel.fstatvfs(mount_fd).f_flag
        locked = sum(attr for bit, attr in _STATVFS_ATTRS.items() if f_flag & bit)
        kernel.mount_setattr(mount_fd, attr_set, attr_clr & ~locked)


def clone_tree(kernel: Kernel, source: str, recursive: bool, dirfd: int = linux.AT_FDCWD) -> int:
    """A detached copy of the mount tree at `source` (host path, or "" for `dirfd` itself)."""
    flags = linux.OPEN_TREE_CLONE | linux.OPEN_TREE_CLOEXEC
    if recursive:
        flags |= linux.AT_RECURSIVE
    if not source:
        flags |= linux.AT_EMPTY_PATH
    return kernel.open_tree(source, flags, dirfd)


def bind_onto(target: int, source: str = "", dirfd: int = linux.AT_FDCWD, what: str = "",
              kernel: Kernel = KERNEL) -> None:
    """Attach a copy of the mount at `source` (a host path, or "" for what `dirfd` refers to)
    on what the fd `target` refers to."""
    tree = clone_tree(kernel, source, recursive=False, dirfd=dirfd)
    try:
        kernel.move_mount_to_fd(tree, target, what or source)
    finally:
        kernel.close(tree)


def detach_bind(kernel: Kernel, bind: mp.Bind, idmap_userns: int | None = None) -> int:
    """A detached copy of the tree at the bind's host source with the flags and recursive
    attributes it asks for, idmapped through the user namespace `idmap_userns` if given;
    move_mount attaches it."""
    try:
        tree = clone_tree(kernel, bind.source, recursive=bool(bind.flags & linux.MS_REC))
    except FileNotFoundError:
        raise OSError(errno.ENOENT, f"bind source {bind.source} does not exist") from None
    try:
        set_bind_flags(kernel, tree, bind.flags)
        if any(bind.recursive):
            kernel.mount_setattr(tree, *bind.recursive, recursive=True)
        if idmap_userns is not None:
            _idmap(kernel, tree, idmap_userns, recursive=bind.idmap_recursive)
    except BaseException:
        kernel.close(tree)
        raise
    return tree


def _idmap(kernel: Kernel, tree: int, userns: int, recursive: bool) -> None:
    try:
        kernel.mount_setattr(tree, linux.MOUNT_ATTR_IDMAP, userns_fd=userns, recursive=recursive)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        raise OSError(e.errno, "cannot idmap it: its filesystem (or one below it, with "
                               "ridmap) does not support idmapped mounts") from None


def detach_bind_sources(config: dict, bundle: str, kernel: Kernel = KERNEL) -> dict[int, int]:
    """Each bind of `config` as a detached tree made now, with the runtime's credentials:
    called before the container's user namespace exists, so a source its root could not
    reach still works (runc opens its mount sources on the host side too), and an idmapped
    one can be given its maps (only the host's root may idmap a host mount). The trees are
    attached in the new mount namespace later. mounts index -> tree fd."""
    namespaces = kernel.mapping_namespaces()
    trees: dict[int, int] = {}
    try:
        for bind in mp.plan_mounts(config, bundle).binds():
            try:
                userns = None
                if bind.idmapped:
                    userns = namespaces.fd_for(list(bind.uid_mappings), list(bind.gid_mappings))
                trees[bind.index] = detach_bind(kernel, bind, userns)
            except OSError as e:
                raise RuntimeUserError(f"mounts[{bind.index}] ({bind.destination}): "
                                       f"{e.strerror or e}") from None
    except BaseException:
        for tree in trees.values():
            kernel.close(tree)
        raise
    finally:
        namespaces.close()
    return trees


class RootfsBuilder:
    """Builds the mount tree of one container by executing its mount plan. All paths in
    `config` are container paths."""

    def __init__(self, config: dict, bundle: str, in_userns: bool,
                 cgroupns: bool = False, bind_trees: dict[int, int] | None = None,
                 no_pivot: bool = False, kernel: Kernel = KERNEL):
        self.kernel = kernel
        self.plan = mp.plan_mounts(config, bundle, in_userns=in_userns, no_pivot=no_pivot)
        self.bundle = bundle
        self.rootfs = self.plan.rootfs
        self.cgroupns = cgroupns
        self.bind_trees = bind_trees or {}   # binds detached on the host side (mounts index)
        self.root = None     # an inroot.Root of the rootfs, from BindRootfs to the switch
        # Mounts that belong to the container: the rootfs and what the init mounted anew.
        # Devices and links are only ever made on these.
        self.own_mounts: set[int] = set()
        self.own_dev = False    # /dev is on one of them (known before pivot_root hides /proc)
        self._steps = {
            mp.IsolateFromHost: self._isolate, mp.BindRootfs: self._bind_rootfs,
            mp.Bind: self._mount, mp.NewFilesystem: self._mount, mp.TmpfsCopyUp: self._mount,
            mp.CgroupMount: self._mount, mp.PopulateDev: self._populate_dev,
            mp.MakeCwd: self._make_cwd, mp.ReadonlyDev: self._readonly_dev,
            mp.PivotRoot: self._pivot_root, mp.MoveRoot: self._move_root,
        }

    def _run(self, op: mp.Operation) -> None:
        self._steps[type(op)](op)

    # -- before pivot_root ---------------------------------------------------------------
    def prepare(self) -> None:
        """Everything up to (not including) pivot_root."""
        for op in self.plan.before_pivot:
            self._run(op)

    def _isolate(self, op: mp.IsolateFromHost) -> None:
        # Nothing we mount may propagate back to the host: every mount we inherited becomes
        # a slave (or private, when asked), whatever `/` is to be in the end (see finish).
        self.kernel.mount(None, "/", None, op.flags)

    def _bind_rootfs(self, op: mp.BindRootfs) -> None:
        # pivot_root refuses a new root under a shared mount, and an unbindable one could not
        # be bound: the mount holding the rootfs is made private in this namespace first.
        self._make_parent_private(op.rootfs)
        # pivot_root needs the new root to be a mount point.
        self.kernel.mount(op.rootfs, op.rootfs, None, linux.MS_BIND | linux.MS_REC)
        self.root = self.kernel.open_root(op.rootfs)
        self.own_mounts.add(self.kernel.mount_id(self.root.fd))

    def _make_parent_private(self, rootfs: str) -> None:
        """pivot_root refuses a new root whose parent mount is shared."""
        best = "/"
        for line in self.kernel.read_text("/proc/self/mountinfo").splitlines():
            mountpoint = line.split()[4]
            if ((rootfs + "/").startswith(mountpoint.rstrip("/") + "/")
                    and len(mountpoint) > len(best)):
                best = mountpoint
        self.kernel.mount(None, best, None, linux.MS_PRIVATE)

    def _make_cwd(self, op: mp.MakeCwd) -> None:
        """A process.cwd the image lacks is made (as runc does), root's and 0755: whether the
        process's user may enter it is then up to the user."""
        try:
            self.kernel.close(self.root.open(op.cwd))
            return
        except FileNotFoundError:
            pass
        except OSError:
            return   # there but not to be entered: entering it says why, as the process's user
        try:
            self.kernel.close(self.root.mkdir_all(op.cwd))
        except OSError as e:
            raise RuntimeUserError(
                f"process.cwd: cannot create {op.cwd}: {e.strerror or e}") from None

    def _readonly_dev(self, op: mp.ReadonlyDev) -> None:
        dev = self.root.open("/dev", os.O_PATH | os.O_DIRECTORY)
        try:
            self.kernel.mount_setattr(dev, linux.MOUNT_ATTR_RDONLY)
        finally:
            self.kernel.close(dev)

    def _own_directory(self, container_path: str) -> bool:
        """Open (or make) `container_path` on one of the container's own mounts; False when
        what is there lies on another (a bind mount the rootfs carried along)."""
        try:
            self.kernel.close(self.root.mkdir_all(container_path, on_mounts=self.own_mounts))
            return True
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            return False

    # -- mounts ----------------------------------------------------------------------------
    def _mount(self, op: mp.Mount) -> None:
        try:
            self.mount_one(op, self.bind_trees.pop(op.index, None))
        except OSError as e:
            raise RuntimeUserError(
                f"mounts[{op.index}] ({op.destination}): {e.strerror or e}") from None

    def mount_one(self, op: mp.Mount, bind_tree: int | None = None) -> None:
        """Mount `op`; `bind_tree`: the bind, already detached on the host side."""
        dest = op.destination
        if bind_tree is None and op.idmapped:
            raise OSError(errno.EINVAL, "idmapped mounts are made of binds only")
        if bind_tree is not None:
            mount_fd = self._attach_tree(bind_tree, dest)
        elif isinstance(op, mp.Bind):
            mount_fd = self._attach_tree(detach_bind(self.kernel, op), dest)
        elif isinstance(op, mp.CgroupMount):
            mount_fd = self._mount_cgroup(dest, op.flags)
        elif isinstance(op, mp.TmpfsCopyUp):
            mount_fd = self._mount_tmpfs_copyup(dest, op.flags, op.data)
        else:
            data = self._with_covered_mode(dest, op.data) if op.covered_mode else op.data
            mount_fd = self._mount_fs(op.source, dest, op.fstype, op.flags, ",".join(data))
        try:
            if any(op.recursive) and not isinstance(op, mp.Bind):
                self.kernel.mount_setattr(mount_fd, *op.recursive, recursive=True)
            for p in op.propagation:
                self.kernel.mount(None, fd_path(mount_fd), None, p)
        finally:
            self.kernel.close(mount_fd)

    def _is_symlink(self, dest: str) -> bool:
        try:
            fd = self.root.open(dest, os.O_PATH | os.O_NOFOLLOW)
        except OSError:
            return False
        try:
            return stat.S_ISLNK(self.kernel.fstat(fd).st_mode)
        finally:
            self.kernel.close(fd)

    def _with_covered_mode(self, dest: str, data: tuple[str, ...]) -> tuple[str, ...]:
        """A tmpfs without mode= takes the mode of the directory it covers (as runc does);
        one over a path the image lacks keeps tmpfs's own default."""
        try:
            covered = self.root.open(dest, os.O_PATH | os.O_DIRECTORY)
        except OSError:
            return data
        try:
            mode = stat.S_IMODE(self.kernel.fstat(covered).st_mode)
        finally:
            self.kernel.close(covered)
        return (*data, f"mode={mode:o}")

    def _attach_tree(self, tree: int, dest: str) -> int:
        """Attach a detached bind on the destination's fd. Returns (and owns) `tree`, now an fd
        of the new mount."""
        try:
            self._attach(tree, dest, stat.S_ISDIR(self.kernel.fstat(tree).st_mode))
        except BaseException:
            self.kernel.close(tree)
            raise
        return tree

    def _attach(self, tree: int, dest: str, is_dir: bool) -> None:
        target = self.root.mkdir_all(dest) if is_dir else self.root.make_file(dest)
        try:
            self.kernel.move_mount_to_fd(tree, target, dest)
        finally:
            self.kernel.close(target)

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
                self.kernel.mount(source, fd_path(target), fstype, flags, data or None)
            except PermissionError:
                if fstype != "sysfs":
                    raise
                # In a user namespace that does not own the network namespace sysfs cannot be
                # mounted; a read-only recursive bind of the host's /sys is what runc falls back to.
                tree = clone_tree(self.kernel, "/sys", recursive=True)
                try:
                    set_bind_flags(self.kernel, tree, flags | linux.MS_RDONLY)
                    self.kernel.move_mount_to_fd(tree, target, dest)
                finally:
                    self.kernel.close(tree)
        finally:
            self.kernel.close(target)
        new = self.root.open(dest, os.O_PATH | os.O_DIRECTORY)
        self.own_mounts.add(self.kernel.mount_id(new))
        return new

    def _mount_tmpfs_copyup(self, dest: str, flags: int, data: tuple[str, ...]) -> int:
        """A tmpfs that starts with a copy of what the image had at `dest`: filled while it is
        detached, then attached."""
        options = [("source", "tmpfs")]
        options += [tuple(o.split("=", 1)) if "=" in o else (o, None) for o in data]
        attr_set, _ = mp.mount_attributes(flags)
        tree = self.kernel.fsmount_new("tmpfs", options, attr_set & ~linux.MOUNT_ATTR_RDONLY)
        try:
            target = self.root.mkdir_all(dest)
            try:
                # without mode=, the tmpfs takes the mode of the directory it covers
                self.kernel.copy_tree(target, tree,
                                      copy_root_mode=not any(k == "mode" for k, _ in options))
                if attr_set & linux.MOUNT_ATTR_RDONLY:
                    self.kernel.mount_setattr(tree, linux.MOUNT_ATTR_RDONLY)
                self.kernel.move_mount_to_fd(tree, target, dest)
            finally:
                self.kernel.close(target)
        except BaseException:
            self.kernel.close(tree)
            raise
        self.own_mounts.add(self.kernel.mount_id(tree))
        return tree

    def _mount_cgroup(self, dest: str, flags: int) -> int:
        """Show the container its own cgroups at `dest`, v1 (one mount per hierarchy on a tmpfs)
        or v2 (the unified hierarchy). Returns an fd of the new mount."""
        hierarchies = _own_cgroups(self.kernel.read_text("/proc/self/cgroup"))
        v1 = [h for h in hierarchies if h[1]]
        if not v1:
            path = hierarchies[0][2] if hierarchies else "/"
            if self.cgroupns:
                mount_fd = self._mount_fs("cgroup2", dest, "cgroup2", flags & ~linux.MS_RDONLY, "")
                if flags & linux.MS_RDONLY:
                    set_bind_flags(self.kernel, mount_fd, flags)
            else:
                mount_fd = clone_tree(self.kernel, "/sys/fs/cgroup" + path, recursive=True)
                set_bind_flags(self.kernel, mount_fd, flags)
                self._attach(mount_fd, dest, is_dir=True)
            return mount_fd
        tmpfs = self._mount_fs("tmpfs", dest, "tmpfs", flags & ~linux.MS_RDONLY, "mode=755")
        mountpoints = _cgroup_v1_mountpoints(self.kernel.read_text("/proc/self/mountinfo"))
        for _, controllers, path in v1:
            host_mp = mountpoints.get(controllers)
            if host_mp:
                self._mount_cgroup_v1(tmpfs, os.path.basename(host_mp), controllers,
                                      host_mp + path, flags)
        if flags & linux.MS_RDONLY:
            self.kernel.mount(None, fd_path(tmpfs), None, linux.MS_REMOUNT | flags, "mode=755")
        return tmpfs

    def _mount_cgroup_v1(self, tmpfs: int, name: str, controllers: str, host_dir: str,
                         flags: int) -> None:
        """One v1 hierarchy in the tmpfs just made (nothing but us can have changed it)."""
        kernel = self.kernel
        kernel.mkdir(name, 0o755, dir_fd=tmpfs)
        target = kernel.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=tmpfs)
        try:
            if self.cgroupns:
                opts = controllers if not controllers.startswith("name=") else f"none,{controllers}"
                kernel.mount("cgroup", fd_path(target), "cgroup", flags & ~linux.MS_RDONLY, opts)
                mount_fd = kernel.open(name, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC,
                                       dir_fd=tmpfs)
            else:
                mount_fd = clone_tree(kernel, host_dir, recursive=False)
                kernel.move_mount_to_fd(mount_fd, target, name)
            try:
                if flags & linux.MS_RDONLY:
                    set_bind_flags(kernel, mount_fd, flags)
            finally:
                kernel.close(mount_fd)
        finally:
            kernel.close(target)

    # -- devices ---------------------------------------------------------------------------
    def _populate_dev(self, op: mp.PopulateDev) -> None:
        self.own_dev = self._own_directory("/dev")
        if not self.own_dev:
            return
        for dev in op.devices:
            try:
                self.create_device(dev, op.bind_from_host)
            except OSError as e:
                raise RuntimeUserError(f"{dev.label}: {e.strerror or e}") from None
        self.create_dev_symlinks(op.links)

    def create_device(self, dev: mp.Device, bind_from_host: bool) -> None:
        # Only ever in the container's own filesystems: never in a bind-mounted volume.
        kernel = self.kernel
        parent, name = self.root.open_parent(dev.path, follow=False, on_mounts=self.own_mounts)
        try:
            if kernel.lexists_at(parent, name):
                if not dev.replace:
                    return
                kernel.unlink(name, dir_fd=parent)
            if bind_from_host:
                self._bind_host_device(dev.path, parent, name)
                return
            kernel.mknod(name, dev.mode | dev.kind, os.makedev(dev.major, dev.minor),
                         dir_fd=parent)
            node = kernel.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            try:
                kernel.chmod_fd(node, dev.mode)
                kernel.chown_fd(node, dev.uid, dev.gid)
            finally:
                kernel.close(node)
        finally:
            kernel.close(parent)

    def _bind_host_device(self, host_path: str, parent: int, name: str) -> None:
        """mknod is not allowed in a user namespace: bind the host's node instead."""
        kernel = self.kernel
        tree = clone_tree(kernel, host_path, recursive=False)
        try:
            mode = kernel.fstat(tree).st_mode
            if not (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)):
                raise OSError(errno.EINVAL, f"{host_path} on the host is not a device")
            # a node needs neither exec nor set-id: the bind gets nosuid and noexec
            kernel.mount_setattr(tree, linux.MOUNT_ATTR_NOSUID | linux.MOUNT_ATTR_NOEXEC)
            kernel.close(kernel.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                                     | os.O_CLOEXEC, 0o644, dir_fd=parent))
            target = kernel.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            try:
                kernel.move_mount_to_fd(tree, target, host_path)
            finally:
                kernel.close(target)
        finally:
            kernel.close(tree)

    def create_dev_symlinks(self, links: tuple[tuple[str, str], ...]) -> None:
        kernel = self.kernel
        dev = self.root.open("/dev", os.O_PATH | os.O_DIRECTORY)
        try:
            links = list(links)
            if kernel.path_exists("/proc/kcore"):
                links.append(("/proc/kcore", "/dev/core"))
            if kernel.exists_beneath(dev, "pts/ptmx"):
                # Use the container's own devpts instance for new ptys.
                if kernel.lexists_at(dev, "ptmx"):
                    kernel.unlink("ptmx", dir_fd=dev)
                links.append(("pts/ptmx", "/dev/ptmx"))
            for target, name in links:
                name = name[len("/dev/"):]
                if not kernel.lexists_at(dev, name):
                    kernel.symlink(target, name, dir_fd=dev)
        finally:
            kernel.close(dev)

    # -- switching root --------------------------------------------------------------------
    def pivot(self) -> None:
        if self.root is not None:
            self.root.close()
        self._run(self.plan.switch)

    def _move_root(self, op: mp.MoveRoot) -> None:
        """--no-pivot: move the rootfs over / and chroot. The host's mounts stay in this
        namespace under the new root, so its full proc and sysfs mounts go first: while one is
        reachable, the kernel lets a process in a nested user namespace mount a fresh,
        unmasked proc or sysfs (as runc hides them)."""
        kernel = self.kernel
        mountinfo = kernel.read_text("/proc/self/mountinfo")
        for mountpoint in _host_proc_and_sys(mountinfo, op.rootfs):
            try:
                kernel.umount2(mountpoint, linux.MNT_DETACH)
            except FileNotFoundError:
                continue    # under one already detached
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.EPERM):
                    raise
                # locked in a user namespace: cover it instead
                kernel.mount("tmpfs", mountpoint, "tmpfs", 0, None)
        kernel.chdir(op.rootfs)
        kernel.mount(op.rootfs, "/", None, linux.MS_MOVE)
        kernel.chroot(".")
        kernel.chdir("/")

    def _pivot_root(self, op: mp.PivotRoot) -> None:
        kernel = self.kernel
        old_root = kernel.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        new_root = kernel.open(op.rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            kernel.fchdir(new_root)
            # pivot_root(".", ".") stacks the old root on top of the new one, so no directory
            # for it is needed inside the image; it is then detached from under us.
            kernel.pivot_root(".", ".")
            kernel.fchdir(old_root)
            kernel.mount(None, ".", None, linux.MS_SLAVE | linux.MS_REC)
            kernel.umount2(".", linux.MNT_DETACH)
        finally:
            kernel.close(old_root)
            kernel.close(new_root)
        kernel.chdir("/")

    # -- after pivot_root ------------------------------------------------------------------
    def finish(self) -> None:
        with self.kernel.open_root("/") as root:
            for op in self.plan.after_pivot:
                if isinstance(op, mp.MaskPath):
                    mask_path(self.kernel, root, op.path)
                elif isinstance(op, mp.ReadonlyPath):
                    readonly_path(self.kernel, root, op.path)
                elif isinstance(op, mp.ReadonlyRoot):
                    self.kernel.mount_setattr(root.fd, linux.MOUNT_ATTR_RDONLY)
                elif isinstance(op, mp.RootPropagation):
                    # Last: the new root is a bind made under a private parent, so it started
                    # out private; "shared" or "unbindable" are given to it here, as crun does
                    # (and the clones above could not be made of an unbindable tree).
                    self.kernel.mount(None, "/", None, op.flags)

    def bind_console(self, pty: int) -> None:
        """Bind the terminal `pty` over /dev/console (after pivot_root). A /dev that is not
        the container's own gets no new entry: its console, if it has one, is covered."""
        with self.kernel.open_root("/") as root:
            try:
                if self.own_dev:
                    target = root.make_file("/dev/console")
                else:
                    target = root.open("/dev/console")
            except (FileNotFoundError, NotADirectoryError):
                return
            try:
                bind_onto(target, dirfd=pty, what="/dev/console", kernel=self.kernel)
            finally:
                self.kernel.close(target)


def mask_path(kernel: Kernel, root, path: str) -> None:
    """Hide `path`: a read-only empty tmpfs over a directory, the container's /dev/null over
    anything else. Neither needs /proc: both are detached mounts attached by fd."""
    try:
        target = root.open(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        if stat.S_ISDIR(kernel.fstat(target).st_mode):
            tree = kernel.fsmount_new("tmpfs", [("source", "tmpfs")], linux.MOUNT_ATTR_RDONLY)
            try:
                kernel.move_mount_to_fd(tree, target, path)
            finally:
                kernel.close(tree)
            return
        try:
            null = root.open("/dev/null")
        except FileNotFoundError:
            raise RuntimeUserError(f"linux.maskedPaths: cannot mask {path}: "
                                   "the container has no /dev/null") from None
        try:
            bind_onto(target, dirfd=null, what=path, kernel=kernel)
        finally:
            kernel.close(null)
    finally:
        kernel.close(target)


def readonly_path(kernel: Kernel, root, path: str) -> None:
    """Make `path` and every mount below it read-only; the other flags of what it covers
    (nosuid, nodev, noexec) stay, as the copy keeps them."""
    try:
        target = root.open(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        tree = clone_tree(kernel, "", recursive=True, dirfd=target)
        try:
            kernel.mount_setattr(tree, linux.MOUNT_ATTR_RDONLY, recursive=True)
            kernel.move_mount_to_fd(tree, target, path)
        finally:
            kernel.close(tree)
    finally:
        kernel.close(target)


def _host_proc_and_sys(mountinfo: str, rootfs: str) -> list[str]:
    """Mount points of whole (root "/") proc and sysfs mounts outside `rootfs`, from this
    namespace's mountinfo, deepest first."""
    found = []
    for line in mountinfo.splitlines():
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


def _own_cgroups(proc_cgroup: str) -> list[tuple[str, str, str]]:
    """(hierarchy id, controllers, path) of this process, from /proc/self/cgroup."""
    result = []
    for line in proc_cgroup.splitlines():
        hid, controllers, path = line.split(":", 2)
        result.append((hid, controllers, path))
    return result


def _cgroup_v1_mountpoints(mountinfo: str) -> dict[str, str]:
    """Comma-joined controllers (as in /proc/self/cgroup) -> host mount point."""
    found: dict[str, str] = {}
    for line in mountinfo.splitlines():
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
