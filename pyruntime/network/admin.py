"""`pyruntime network install` / `uninstall`: what an administrator adds to a host for networking.

`pip install` gives the three programs side by side, and that alone networks containers: the
network hook that `spec --network` writes into config.json runs the pyruntime-bridge beside it,
and the default network is built in. What install adds is for everything else on the host:

- a link /opt/cni/bin/pyruntime-bridge to this installation's plugin, where CNI runtimes
  (podman, containerd, the reference plugins delegating IPAM) look for plugins by type;
- the default network as a file, <config dir>/pyruntime.conflist, so that it can be read and
  changed (the hook prefers the file to the built-in copy).

Both steps are idempotent. Nothing of somebody else's is replaced: a different file where the
link goes needs --force, and an existing conflist is always kept. `uninstall` removes the link
only when it leads to a pyruntime-bridge and the conflist only while it is unchanged.
"""

from __future__ import annotations

import json
import os

from pyruntime.errors import RuntimeUserError

CONFLIST_NAME = "pyruntime.conflist"


def own_plugin() -> str:
    """This installation's pyruntime-bridge, links resolved (what the CNI link points to)."""
    from pyruntime.network import locate

    found = locate.find_own(locate.PLUGIN)
    if found is None:
        raise RuntimeUserError(f"{locate.PLUGIN} not found beside this pyruntime (looked in "
                               f"{', '.join(locate.program_dirs())}): install pyruntime with pip "
                               "(it installs the plugin beside the pyruntime command)")
    return os.path.realpath(found)


def default_conflist_text() -> str:
    from pyruntime.network.config import DEFAULT_CONFLIST

    return json.dumps(DEFAULT_CONFLIST, indent=2) + "\n"


def install(cni_bin_dir: str, config_dir: str, force: bool = False) -> list[str]:
    """Make the link and the default network's file; one line per step for the user."""
    from pyruntime.network import locate

    plugin = own_plugin()
    report = [_link(plugin, os.path.join(cni_bin_dir, locate.PLUGIN), force)]
    report.append(_write_conflist(os.path.join(config_dir, CONFLIST_NAME)))
    hook = locate.find_own(locate.HOOK)
    if hook is not None:
        report.append(f"network hook: {hook} (what `pyruntime spec --network` writes into config.json)")
    return report


def uninstall(cni_bin_dir: str, config_dir: str) -> list[str]:
    """Undo install, leaving alone whatever is not (or no longer) what it made."""
    from pyruntime.network import locate

    report = []
    link = os.path.join(cni_bin_dir, locate.PLUGIN)
    if not os.path.islink(link):
        report.append(f"{link}: " + ("not a link, left alone" if os.path.lexists(link) else "not there"))
    elif os.path.basename(os.readlink(link)) != locate.PLUGIN:
        report.append(f"{link}: leads to {os.readlink(link)}, not a {locate.PLUGIN}; left alone")
    else:
        _remove(link)
        report.append(f"removed {link}")
    path = os.path.join(config_dir, CONFLIST_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            unchanged = f.read() == default_conflist_text()
    except FileNotFoundError:
        report.append(f"{path}: not there")
    except OSError as e:
        raise RuntimeUserError(f"cannot read {path}: {e.strerror}") from None
    else:
        if unchanged:
            _remove(path)
            report.append(f"removed {path}")
        else:
            report.append(f"{path}: changed since install, kept")
    return report


def _link(target: str, link: str, force: bool) -> str:
    if os.path.islink(link) and os.readlink(link) == target:
        return f"{link} -> {target} (already there)"
    if os.path.lexists(link) and not force:
        what = f"a link to {os.readlink(link)}" if os.path.islink(link) else "not a link"
        raise RuntimeUserError(f"{link} exists ({what}): --force replaces it")
    directory = os.path.dirname(link)
    tmp = os.path.join(directory, f".{os.path.basename(link)}.{os.getpid()}.tmp")
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        os.symlink(target, tmp)
        os.replace(tmp, link)       # a CNI runtime looking meanwhile sees the old or the new one
    except OSError as e:
        _remove(tmp)
        raise RuntimeUserError(f"cannot link {link}: {e.strerror}") from None
    return f"{link} -> {target}"


def _write_conflist(path: str) -> str:
    if os.path.lexists(path):
        return f"{path}: exists, kept (the hook uses it)"
    directory = os.path.dirname(path)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        _remove(tmp)                # left by a run that died here under our pid
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            with open(fd, "w", encoding="utf-8") as f:
                f.write(default_conflist_text())
            os.link(tmp, path)      # fails rather than replace a file made meanwhile
        except FileExistsError:
            return f"{path}: exists, kept (the hook uses it)"
        finally:
            _remove(tmp)
    except OSError as e:
        raise RuntimeUserError(f"cannot write {path}: {e.strerror}") from None
    return f"wrote {path} (the default network; edit it to change the subnet or the bridge)"


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise RuntimeUserError(f"cannot remove {path}: {e.strerror}") from None
