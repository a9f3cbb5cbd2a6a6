"""What `pyruntime --version` reports: the release, the commit it was built from, the spec
version and the libseccomp it loads, in runc's layout.

The commit comes from the checkout when the package runs from one (its HEAD, read from the git
files: no git program needed), or else from the COMMIT file a build put beside the modules
(setup.py records it in every sdist and wheel built from a checkout). A build from a plain
copy of the sources knows no commit, and says so.
"""

from __future__ import annotations

import os
import sys

COMMIT_FILE = "COMMIT"
UNKNOWN = "unknown"
_HEX = frozenset("0123456789abcdef")


def version_text() -> str:
    from pyruntime import OCI_VERSION, __version__
    from pyruntime.linux import libraries

    lines = [f"pyruntime version {__version__}", f"commit: {commit()}", f"spec: {OCI_VERSION}",
             f"python: {'.'.join(map(str, sys.version_info[:3]))}"]
    seccomp = libraries.seccomp_library_version()
    if seccomp:     # runc leaves the line out when it has no libseccomp either
        lines.append(f"libseccomp: {seccomp}")
    return "\n".join(lines)


def commit(package_dir: str | None = None) -> str:
    package_dir = package_dir or os.path.dirname(os.path.abspath(__file__))
    return (git_head(os.path.dirname(package_dir))
            or recorded_commit(package_dir)
            or UNKNOWN)


def recorded_commit(package_dir: str) -> str | None:
    text = _read(os.path.join(package_dir, COMMIT_FILE))
    return text if text and _is_object_name(text) else None


def git_head(checkout: str) -> str | None:
    """The commit HEAD names in the git checkout at `checkout`, or None if it is not one."""
    gitdir = os.path.join(checkout, ".git")
    if os.path.isfile(gitdir):          # a worktree or submodule: "gitdir: <path>"
        pointer = _read(gitdir) or ""
        if not pointer.startswith("gitdir: "):
            return None
        gitdir = os.path.join(checkout, pointer[len("gitdir: "):])
    head = _read(os.path.join(gitdir, "HEAD"))
    if not head:
        return None
    if not head.startswith("ref: "):
        return head if _is_object_name(head) else None      # a detached HEAD
    ref = head[len("ref: "):]
    common = _read(os.path.join(gitdir, "commondir"))
    common_dir = os.path.join(gitdir, common) if common else gitdir
    for base in (gitdir, common_dir):
        loose = _read(os.path.join(base, ref))
        if loose and _is_object_name(loose):
            return loose
    for line in (_read(os.path.join(common_dir, "packed-refs")) or "").splitlines():
        name, _, packed_ref = line.partition(" ")
        if packed_ref == ref and _is_object_name(name):
            return name
    return None


def record(target_package_dir: str, source_checkout: str) -> str | None:
    """Write the commit of the sources at `source_checkout` (a checkout, or an sdist that
    carries its COMMIT) into `target_package_dir` (a build's copy of the package)."""
    found = git_head(source_checkout) or recorded_commit(os.path.join(source_checkout, "pyruntime"))
    if not found:
        return None
    os.makedirs(target_package_dir, exist_ok=True)
    target = os.path.join(target_package_dir, COMMIT_FILE)
    # replaced, not rewritten: the release tree of an sdist holds hard links to the sources
    tmp = f"{target}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(found + "\n")
    os.replace(tmp, target)
    return found


def _is_object_name(text: str) -> bool:
    return len(text) in (40, 64) and _HEX.issuperset(text)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
