"""Errors that carry a message meant for the user.

Anything raised as a `RuntimeUserError` (or a subclass) is printed as one line and turned into a
non-zero exit by the CLI; every other exception is a bug and only shows a traceback with --debug.
"""

from __future__ import annotations


class RuntimeUserError(Exception):
    """A failure the user can act on: bad input, wrong state, missing thing."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(RuntimeUserError):
    """config.json (or another OCI document) is invalid.

    `problems` is a list of (json_path, message) pairs, most relevant first; the message names
    each offending field by its JSON path, e.g. ``process.user.uid: expected an integer >= 0``.
    """

    def __init__(self, problems: list[tuple[str, str]], source: str = "config.json"):
        self.problems = list(problems)
        self.source = source
        lines = [f"{path}: {msg}" if path else msg for path, msg in self.problems]
        if len(lines) == 1:
            text = f"invalid {source}: {lines[0]}"
        else:
            text = f"invalid {source} ({len(lines)} problems):\n  " + "\n  ".join(lines)
        super().__init__(text)


class ContainerNotFound(RuntimeUserError):
    def __init__(self, container_id: str):
        super().__init__(f"container {container_id!r} does not exist")
        self.container_id = container_id


class ContainerExists(RuntimeUserError):
    def __init__(self, container_id: str):
        super().__init__(f"container with id {container_id!r} already exists")
        self.container_id = container_id


class InvalidState(RuntimeUserError):
    """The operation is not allowed in the container's current status."""


class HookFailed(RuntimeUserError):
    """An OCI hook exited non-zero or timed out where the spec says that aborts the operation."""


class NotSupported(RuntimeUserError):
    """The config asks for something this host or this runtime cannot do."""
