"""slirp4netns mode: networking a user can give its own containers, without root's help.

slirp4netns (Debian package) joins the container's user and network namespaces, makes a tap
device there (10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3) and carries its traffic through
ordinary sockets of the user on the host: egress works, the host's loopback is refused
(--disable-host-loopback), and published ports are host sockets it forwards into the
container (its API's add_hostfwd). The hook starts it at createRuntime, waits until the
interface is up, publishes the ports, records its pid; at poststop it stops exactly that
process (same pid and start time) and removes the record.
"""

from __future__ import annotations

import json
import os
import signal
import time

from pyruntime.errors import RuntimeUserError

TAP = "tap0"
GUEST_ADDRESS = "10.0.2.100"
READY_TIMEOUT = 10.0
RECORD = "slirp4netns.json"
API_SOCKET = "slirp4netns.sock"


class SlirpError(RuntimeUserError):
    pass


def start(directory: str, pid: int, publish: list[dict]) -> None:
    """Run slirp4netns for the container whose init is `pid`; `directory` is the container's
    private directory for the record and the API socket."""
    import shutil
    import subprocess

    program = shutil.which("slirp4netns")
    if program is None:
        raise SlirpError("network slirp4netns: slirp4netns is not installed (Debian package slirp4netns)")
    socket_path = os.path.join(directory, API_SOCKET)
    ready_read, ready_write = os.pipe()
    try:
        with open(os.path.join(directory, "slirp4netns.log"), "ab") as log:
            proc = subprocess.Popen(
                [program, "--configure", "--mtu=65520", "--disable-host-loopback",
                 f"--api-socket={socket_path}", f"--ready-fd={ready_write}", str(pid), TAP],
                pass_fds=(ready_write,), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)    # it outlives this hook, until poststop
        os.close(ready_write)
        ready_write = -1
        _write_record(directory, proc.pid)
        _wait_ready(ready_read, proc, directory)
    finally:
        os.close(ready_read)
        if ready_write >= 0:
            os.close(ready_write)
    for mapping in publish:
        _add_hostfwd(socket_path, mapping)


def stop(directory: str) -> None:
    """Stop the slirp4netns this container's hook started, if it still runs."""
    record = _read_record(directory)
    if record is None:
        return
    pid = record["pid"]
    if _start_time(pid) == record["start_time"]:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 5
        while _start_time(pid) == record["start_time"] and time.monotonic() < deadline:
            time.sleep(0.01)
        if _start_time(pid) == record["start_time"]:
            os.kill(pid, signal.SIGKILL)
    for name in (RECORD, API_SOCKET, "slirp4netns.log"):
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass


def _wait_ready(ready_fd: int, proc, directory: str) -> None:
    """slirp4netns writes "1" on the ready fd once the tap is configured; EOF means it died."""
    import select

    poller = select.poll()
    poller.register(ready_fd, select.POLLIN)
    if not poller.poll(READY_TIMEOUT * 1000) or not os.read(ready_fd, 1):
        proc.kill()
        proc.wait()
        stop(directory)
        raise SlirpError(f"network slirp4netns: it did not come up: {_log_tail(directory)}")


def _add_hostfwd(socket_path: str, mapping: dict) -> None:
    import socket

    request = {"execute": "add_hostfwd",
               "arguments": {"proto": mapping["protocol"], "host_addr": mapping.get("hostIP", "0.0.0.0"),
                             "host_port": mapping["hostPort"], "guest_addr": GUEST_ADDRESS,
                             "guest_port": mapping["containerPort"]}}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as api:
        api.settimeout(READY_TIMEOUT)
        api.connect(socket_path)
        api.sendall(json.dumps(request).encode())
        api.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := api.recv(4096):
            answer += chunk
    try:
        reply = json.loads(answer or b"{}")
    except ValueError:
        reply = {"error": {"desc": answer.decode(errors="replace")}}
    if "error" in reply:
        raise SlirpError(f"publish {mapping['hostPort']}/{mapping['protocol']}: slirp4netns refused: "
                         f"{reply['error'].get('desc', reply['error'])}")


def _write_record(directory: str, pid: int) -> None:
    with open(os.path.join(directory, RECORD), "w") as f:
        json.dump({"pid": pid, "start_time": _start_time(pid)}, f)


def _read_record(directory: str) -> dict | None:
    try:
        with open(os.path.join(directory, RECORD)) as f:
            record = json.load(f)
        return {"pid": int(record["pid"]), "start_time": record["start_time"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _start_time(pid: int) -> int | None:
    from pyruntime.state import process_start_time

    return process_start_time(pid)


def _log_tail(directory: str) -> str:
    try:
        with open(os.path.join(directory, "slirp4netns.log"), errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
        return lines[-1] if lines else "no output"
    except OSError:
        return "no output"
