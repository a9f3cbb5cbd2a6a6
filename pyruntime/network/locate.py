"""Where pyruntime's own programs are, however it was installed.

pip, pipx and a distribution all install the three console scripts (`pyruntime`,
`pyruntime-network-hook`, `pyruntime-bridge`) into one directory: a venv's bin, pipx's venv
(linked into ~/.local/bin), /usr/local/bin. So each program finds the others beside itself:
beside the script it was started as (and the file that resolves to, when it was started through
a link such as /usr/local/bin/pyruntime), and beside the interpreter (a venv's bin, which also
covers the checkout's hooks/ script run by the venv's python).
"""

from __future__ import annotations

import os
import sys

PLUGIN = "pyruntime-bridge"
HOOK = "pyruntime-network-hook"


def program_dirs(argv0: str | None = None, executable: str | None = None) -> list[str]:
    """The directories to look in, in order, without repeats."""
    argv0 = sys.argv[0] if argv0 is None and sys.argv else (argv0 or "")
    executable = sys.executable if executable is None else executable
    dirs = []
    # argv[0] is "-c" under `python -c` and a bare name only when run from its own directory
    if argv0 and os.sep in argv0 and os.path.isfile(argv0):
        dirs.append(os.path.dirname(os.path.realpath(argv0)))
        dirs.append(os.path.dirname(os.path.abspath(argv0)))
    if executable:
        dirs.append(os.path.dirname(os.path.abspath(executable)))
    return list(dict.fromkeys(dirs))


def find_own(name: str, dirs: list[str] | None = None) -> str | None:
    """The program `name` of this installation (an executable file beside us), or None."""
    for directory in program_dirs() if dirs is None else dirs:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None
