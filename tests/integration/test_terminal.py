"""process.terminal: the pty master reaches the caller over --console-socket (SCM_RIGHTS)."""

import os
import socket
import threading
import time


def receive_master(listener, result):
    conn, _ = listener.accept()
    with conn:
        msg, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        result["name"], result["fd"] = msg, fds[0]


def console_receiver(sock_path):
    """A --console-socket listener and the thread that takes the pty master from it."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(1)
    result = {}
    receiver = threading.Thread(target=receive_master, args=(listener, result))
    receiver.start()
    return listener, receiver, result


def read_until_eof(fd, timeout=10):
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the slave side is gone
            break
        if not chunk:
            break
        out += chunk
    return out.decode(errors="replace")


def test_console_socket_gets_pty_master(rt, tmp_path):
    config_changes = {"process__terminal": True,
                      "process__consoleSize": {"height": 33, "width": 101}}
    bundle = rt.bundle(["sh", "-c", "tty; stty size; echo fd0=$(readlink /proc/self/fd/0)"],
                       **config_changes)
    sock_path = str(tmp_path / "console.sock")
    listener, receiver, result = console_receiver(sock_path)
    cid = rt.new_id()
    try:
        rt("create", "--bundle", str(bundle), "--console-socket", sock_path, cid, check=True)
        receiver.join(10)
        assert "fd" in result
        rt("start", cid, check=True)
        output = read_until_eof(result["fd"])
    finally:
        listener.close()
        if "fd" in result:
            os.close(result["fd"])
    lines = [line.strip() for line in output.splitlines()]
    assert lines[0] == "/dev/pts/0"
    assert lines[1] == "33 101"
    assert lines[2] == "fd0=/dev/pts/0"


def test_terminal_without_console_socket_is_refused_for_create(rt):
    bundle = rt.bundle(["true"], process__terminal=True)
    cid = rt.new_id()
    proc = rt("create", "--bundle", str(bundle), cid)
    assert proc.returncode != 0 and "--console-socket" in proc.stderr
    assert not (rt.root / cid).exists()


def test_foreground_run_proxies_the_terminal(rt):
    bundle = rt.bundle(["sh", "-c", "read line; echo got=$line; tty; exit 4"], process__terminal=True)
    proc = rt("run", "--bundle", str(bundle), rt.new_id(), input=b"hello\n")
    assert proc.returncode == 4, proc.stderr
    lines = proc.stdout.replace("\r", "").splitlines()
    assert "got=hello" in lines and "/dev/pts/0" in lines


def test_kill_of_a_detached_container_with_a_console_socket(rt, tmp_path):
    """runc's `kill detached busybox`: run -d with a terminal, kill it, it stops, delete."""
    bundle = rt.bundle(["sleep", "600"], process__terminal=True)
    sock_path = str(tmp_path / "console.sock")
    listener, receiver, result = console_receiver(sock_path)
    cid = rt.new_id()
    try:
        rt("run", "-d", "--console-socket", sock_path, "--bundle", str(bundle), cid, check=True)
        receiver.join(10)
        assert rt.state(cid)["status"] == "running"
        rt("kill", cid, "KILL", check=True)
        deadline = time.monotonic() + 10
        while rt.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rt.state(cid)["status"] == "stopped"
        rt("delete", cid, check=True)
        assert rt("state", cid).returncode != 0
    finally:
        listener.close()
        if "fd" in result:
            os.close(result["fd"])
