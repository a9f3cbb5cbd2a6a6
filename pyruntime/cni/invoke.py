"""Running one CNI plugin executable: find it in CNI_PATH, give it its config, read its answer.

Both sides of the protocol in this project run plugins: the conflist runner (`cni/runtime.py`)
for each plugin of a list, and the bridge plugin when its `ipam.type` names another plugin.
This module is the one place that starts a plugin and reads what it printed; each caller turns
an outcome into its own error wording, which users and tests already know. Standard library
only: the network hooks import it.
"""

from __future__ import annotations

import os
import signal
import subprocess

from pyruntime import jsondoc
from pyruntime.record import Record


class Outcome(Record):
    """stdout: the plugin's output, stripped; doc: it parsed as JSON (None when empty or not
    JSON, and then decode_error says why when there was output)."""
    __slots__ = ("returncode", "stdout", "stderr", "doc", "decode_error")


def find(plugin_type: str, cni_path: list[str]) -> str | None:
    """The executable called `plugin_type` in the first CNI_PATH directory that has one.
    The caller checks the name first (plugin_name.problem): a path here would escape CNI_PATH."""
    for directory in cni_path:
        candidate = os.path.join(directory, plugin_type)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _tie_to_caller() -> None:
    # A hook killed by its timeout must not leave a plugin working on behind its back: the
    # runtime's rollback (poststop DEL) would race with it.
    from pyruntime import linux

    linux.set_pdeathsig(signal.SIGKILL)
    os.setpgid(0, 0)


def run(path: str, env: dict[str, str], stdin: bytes, timeout: float, *,
        tied_to_caller: bool = False) -> Outcome:
    """Run the plugin once. OSError when it cannot start; subprocess.TimeoutExpired once it
    (and, when tied to the caller, its whole process group) has been killed for running late."""
    options = {"cwd": "/", "preexec_fn": _tie_to_caller} if tied_to_caller else {}
    proc = subprocess.Popen([path], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, close_fds=True, **options)
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc, tied_to_caller)
        raise
    return outcome(proc.returncode, out, err)


def _kill(proc: subprocess.Popen, whole_group: bool) -> None:
    try:
        if whole_group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except ProcessLookupError:
        pass
    proc.communicate()


def outcome(returncode: int, out: bytes, err: bytes) -> Outcome:
    stdout = out.strip()
    doc, decode_error = None, ""
    if stdout:
        try:
            doc = jsondoc.loads(stdout)
        except jsondoc.JsonDocError as e:
            decode_error = str(e)
    return Outcome(returncode, stdout, err, doc, decode_error)
