"""The one exception of the host helpers.

The helpers serve a CNI plugin but do not speak CNI: a failure says what kind of trouble it is,
and the plugin's entry point maps the kind onto the protocol's error code. msg and details keep
the short headline and the specifics apart, as a CNI error object does.
"""

from __future__ import annotations

CONFIG = "config"               # the settings asked for something impossible or conflicting
ENVIRONMENT = "environment"     # the caller's environment: a network namespace path, a variable
IO = "io"                       # the kernel, a file or a tool refused
PORT_TAKEN = "port-taken"       # another attachment publishes this host port
EXHAUSTED = "exhausted"         # every address of a range set is leased
BUSY = "busy"                   # a lock stayed taken too long
EXISTS = "exists"               # a link the helper was to create is already there
KINDS = (CONFIG, ENVIRONMENT, IO, PORT_TAKEN, EXHAUSTED, BUSY, EXISTS)


class HostNetError(Exception):
    def __init__(self, kind: str, msg: str, details: str = ""):
        super().__init__(f"{msg}: {details}" if details else msg)
        self.kind = kind
        self.msg = msg
        self.details = details
