"""The messages between the runtime and the container-side stages, and the order they come in.

Every message of a create or an exec is a pair of functions here, one for the side that sends
it and one for the side that waits for it; nothing else names a message. CREATE and EXEC write
the handshake down once, in order, with who sends each message and when it is left out. The
framing (one SOCK_SEQPACKET datagram per message, marshal'ed dicts, an "error" message or EOF
ending the exchange) is sync.py's.

Stage 1 and the process it forks (the container's init, or the exec'ed process) share the
child end of the channel; the runtime's "go" after the pid report keeps the second's messages
behind the first's.
"""

from __future__ import annotations

from pyruntime.init import sync

RUNTIME = "runtime"
STAGE1 = "stage 1"
INIT = "init"           # the container's init (stage 2 of create)
PROCESS = "process"     # the exec'ed process (stage 2 of exec)


class Message:
    """One step of a handshake: `kind` on the wire, who sends it, whether an fd travels with
    it (SCM_RIGHTS), and the condition it depends on (None: always sent)."""

    __slots__ = ("kind", "sender", "carries_fd", "only_with")

    def __init__(self, kind: str, sender: str, *, carries_fd: bool = False,
                 only_with: str | None = None):
        self.kind = kind
        self.sender = sender
        self.carries_fd = carries_fd
        self.only_with = only_with

    def __repr__(self) -> str:
        return f"Message({self.kind!r} from {self.sender})"


OPTIONS = Message("options", RUNTIME)
CONSOLE = Message("console", RUNTIME, carries_fd=True, only_with="console socket")
CGROUP_READY = Message("cgroup-ready", RUNTIME)
USERNS = Message("userns", STAGE1, only_with="new user namespace")
USERNS_MAPPED = Message("userns-mapped", RUNTIME, only_with="new user namespace")
INIT_PID = Message("init-pid", STAGE1)
INIT_GO = Message("init-go", RUNTIME)
HOOKS = Message("hooks", INIT)
HOOKS_DONE = Message("hooks-done", RUNTIME)
INIT_LISTENER = Message("seccomp-listener", INIT, carries_fd=True, only_with="seccomp notify")
READY = Message("ready", INIT)
CREATED = Message("created", RUNTIME)

EXEC_PID = Message("exec-pid", STAGE1)
EXEC_GO = Message("exec-go", RUNTIME)
EXEC_LISTENER = Message("seccomp-listener", PROCESS, carries_fd=True, only_with="seccomp notify")
EXEC = Message("exec", PROCESS)

# The order of `create`: the options (and the console socket) before anything; the cgroup
# before stage 1 does anything, since the devices the init makes must be allowed there; the id
# maps before the other namespaces are made in the new user namespace; the hooks once the
# namespaces and mounts exist; "created" only once the state says so.
CREATE = (OPTIONS, CONSOLE, CGROUP_READY, USERNS, USERNS_MAPPED, INIT_PID, INIT_GO, HOOKS,
          HOOKS_DONE, INIT_LISTENER, READY, CREATED)
# The order of `exec`; after "exec" the channel closes on a successful execve, or carries
# the failure.
EXEC_SEQUENCE = (OPTIONS, CONSOLE, CGROUP_READY, EXEC_PID, EXEC_GO, EXEC_LISTENER, EXEC)


def _send(sock: int, message: Message, **payload) -> None:
    sync.send(sock, message.kind, **payload)


def _recv(sock: int, *messages: Message) -> dict:
    return sync.recv(sock, *(m.kind for m in messages))


# -- both: the stage's options ----------------------------------------------------------------
def send_options(sock: int, console_fd: int | None) -> None:
    """The options are in the memfd the stage inherited; this says they are complete, and
    passes the console socket, connected meanwhile, along."""
    _send(sock, OPTIONS, console=console_fd is not None)
    if console_fd is not None:
        sync.send_fd(sock, CONSOLE.kind, console_fd)


def recv_options(sock: int) -> int | None:
    """The console socket's fd, if the runtime passed one."""
    if _recv(sock, OPTIONS)["console"]:
        return sync.recv_fd(sock, CONSOLE.kind)[1]
    return None


def send_cgroup_ready(sock: int) -> None:
    _send(sock, CGROUP_READY)


def recv_cgroup_ready(sock: int) -> None:
    _recv(sock, CGROUP_READY)


# -- create: stage 1 -------------------------------------------------------------------------
def send_userns(sock: int) -> None:
    """Stage 1 is in its new user namespace and asks for its id maps."""
    _send(sock, USERNS)


def send_userns_mapped(sock: int) -> None:
    _send(sock, USERNS_MAPPED)


def recv_userns_mapped(sock: int) -> None:
    _recv(sock, USERNS_MAPPED)


def send_init_pid(sock: int, pid: int) -> None:
    _send(sock, INIT_PID, pid=pid)


def recv_userns_or_init_pid(sock: int) -> int | None:
    """What stage 1 says after "cgroup-ready": None when it asks for id maps first (then
    recv_init_pid follows), else the init's pid."""
    msg = _recv(sock, USERNS, INIT_PID)
    return None if msg["type"] == USERNS.kind else msg["pid"]


def recv_init_pid(sock: int) -> int:
    return _recv(sock, INIT_PID)["pid"]


def send_init_go(sock: int) -> None:
    _send(sock, INIT_GO)


def recv_init_go(sock: int) -> None:
    _recv(sock, INIT_GO)


# -- create: the init ------------------------------------------------------------------------
def send_hooks(sock: int) -> None:
    """The init's namespaces and mounts exist: time for prestart and createRuntime."""
    _send(sock, HOOKS)


def recv_hooks(sock: int) -> None:
    _recv(sock, HOOKS)


def send_hooks_done(sock: int, state: dict) -> None:
    """`state`: the OCI state the createContainer hooks get."""
    _send(sock, HOOKS_DONE, state=state)


def recv_hooks_done(sock: int) -> dict:
    return _recv(sock, HOOKS_DONE)["state"]


def send_ready(sock: int) -> None:
    _send(sock, READY)


def recv_ready(sock: int) -> None:
    _recv(sock, READY)


def send_created(sock: int) -> None:
    _send(sock, CREATED)


def recv_created(sock: int) -> None:
    _recv(sock, CREATED)


# -- both: a seccomp listener ----------------------------------------------------------------
class ListenerPasser:
    """Ready to pass a seccomp listener before there is one: the passing is then a single
    sendmsg, right after the filter went on (any other call might then wait for an agent
    that has no listener yet)."""

    def __init__(self, sock: int):
        self._passer = sync.FdPasser(sock)

    def send(self, listener: int) -> None:
        # the same kind in create and exec
        self._passer.send(INIT_LISTENER.kind, listener)

    def close(self) -> None:
        self._passer.close()

    def __enter__(self) -> "ListenerPasser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def recv_seccomp_listener(sock: int) -> int:
    """The listener fd (close-on-exec here)."""
    return sync.recv_fd(sock, INIT_LISTENER.kind)[1]


# -- exec ------------------------------------------------------------------------------------
def send_exec_pid(sock: int, pid: int) -> None:
    _send(sock, EXEC_PID, pid=pid)


def recv_exec_pid(sock: int) -> int:
    return _recv(sock, EXEC_PID)["pid"]


def send_exec_go(sock: int) -> None:
    _send(sock, EXEC_GO)


def recv_exec_go(sock: int) -> None:
    _recv(sock, EXEC_GO)


def send_exec(sock: int) -> None:
    """The process is about to execve: the channel closes with it (close-on-exec)."""
    _send(sock, EXEC)


def recv_exec(sock: int) -> None:
    """"exec", then EOF once the execve succeeded; a failure after "exec" is raised."""
    _recv(sock, EXEC)
    sync.raise_if_reported(sock, "exec failed")


# -- failures --------------------------------------------------------------------------------
def send_error(sock: int, message: str) -> None:
    """A stage's failure: whatever the other side waits for, this ends its wait."""
    sync.send_error(sock, message)


def raise_reported(sock: int, otherwise: str) -> None:
    sync.raise_reported(sock, otherwise)
