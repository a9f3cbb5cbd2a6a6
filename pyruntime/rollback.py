"""Deferred clean-ups of an operation that makes things one after the other.

Each step that makes something pushes how to undo it; when the operation fails half-way, the
undo steps run last-in first-out, so each runs while what it depends on still exists (the init
is killed before its cgroup is removed, the cgroup before the state directory). Clean-ups that
are due either way (closing the runtime's end of a channel) are deferred on the same stack, so
the order of everything is the order of the pushes.

A failing step is reported as a warning that names it, and the steps after it still run; the
error the user sees stays the one that made the operation fail.
"""

from __future__ import annotations

from pyruntime import log


class Rollback:
    def __init__(self) -> None:
        self._steps: list[tuple[str, object, bool]] = []

    def push(self, what: str, action) -> None:
        """`action` undoes a step, should the operation fail; `what` names it in a warning."""
        self._steps.append((what, action, False))

    def defer(self, what: str, action) -> None:
        """`action` runs when the operation ends, failed or not."""
        self._steps.append((what, action, True))

    def run(self) -> None:
        """The operation failed: undo everything, in reverse order."""
        self._unwind(failed=True)

    def done(self) -> None:
        """The operation succeeded: run the deferred clean-ups only."""
        self._unwind(failed=False)

    def _unwind(self, failed: bool) -> None:
        while self._steps:
            what, action, always = self._steps.pop()
            if not (failed or always):
                continue
            try:
                action()
            except Exception as e:  # keep going: one failed step must not leak the rest
                log.warn(f"rollback: {what}: {e}" if failed else f"clean-up: {what}: {e}")

    def __enter__(self) -> "Rollback":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._unwind(failed=exc_type is not None)
