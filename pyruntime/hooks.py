"""OCI hooks (runtime-spec "POSIX-platform Hooks"): each runs `path` with `args` and `env`, the
container state JSON on stdin, and an optional `timeout` in seconds.

Which failures abort is the caller's decision (`run_hooks(..., fatal=...)`): hooks before the
user process starts abort the operation; poststart and poststop failures are warnings and the
remaining hooks still run.
"""

from __future__ import annotations

from pyruntime import log
from pyruntime.errors import HookFailed

PHASES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def hooks_of(config: dict, phase: str) -> list[dict]:
    return list((config.get("hooks") or {}).get(phase) or [])


def run_hook(hook: dict, state: dict, phase: str, index: int) -> None:
    import json  # not at the top: the container's init imports this module on its hot path
    import subprocess

    args = list(hook.get("args") or [hook["path"]])
    name = f"{phase}[{index}] {hook['path']}"
    try:
        proc = subprocess.run(
            args, executable=hook["path"], input=json.dumps(state).encode(),
            env=hook_environment(hook),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=hook.get("timeout"),
            close_fds=True,
        )
    except subprocess.TimeoutExpired:
        raise HookFailed(f"error running hook {name}: timed out after {hook['timeout']}s") from None
    except OSError as e:
        raise HookFailed(f"error running hook {name}: {e.strerror}") from None
    output = (proc.stdout + proc.stderr).decode(errors="replace").strip()
    if output:
        log.info(f"hook {name}: {output}")
    if proc.returncode != 0:
        detail = f": {output}" if output else ""
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
        raise HookFailed(f"error running hook {name}: {how}{detail}")


def hook_environment(hook: dict) -> dict[str, str]:
    """The hook's `env` exactly when it has one; without one, the runtime's own environment
    (as runc and crun give it)."""
    import os

    if "env" not in hook:
        return dict(os.environ)
    return {k: v for k, v in (e.split("=", 1) for e in hook["env"] or [] if "=" in e)}


def run_hooks(config: dict, phase: str, state: dict, fatal: bool = True) -> None:
    for index, hook in enumerate(hooks_of(config, phase)):
        try:
            run_hook(hook, state, phase, index)
        except HookFailed as e:
            if fatal:
                raise
            log.warn(str(e))
