"""pyruntime-netd: a small root service that puts unprivileged users' containers on a bridge.

The pattern of lxc-user-nic and netsetgo: a rootless container has a network namespace of its
own, but only root can give it a veth on a host bridge. The admin runs this service; a user's
network hook connects to its socket and asks: "attach the network namespace of my process
PID, container ID, to network NAME". The service trusts nothing but what it can verify:

- who asks: SO_PEERCRED on the connection, never a claim in the request;
- whose namespace it is: it opens /proc/PID/ns/net once and checks, on that very fd, that the
  namespace is not its own (the host's) and that it belongs to a user namespace owned by the
  caller (NS_GET_USERNS, NS_GET_OWNER_UID); a pid reused meanwhile changes nothing;
- how much: the allowance file (/etc/pyruntime/netd.conf, lines `USER NETWORK COUNT`, as
  /etc/lxc/lxc-usernet) caps the user's attachments per network.

Then it pins the namespace (/run/netns/netd-<uid>-<id>) and runs the network's CNI list (ADD)
with our plugin or any other. The attachment lives as long as the connection: when the caller
closes it (its hook's holder process is stopped at poststop, or dies) the service runs DEL,
removes the pin and gives the allowance back. Every refusal is one clear error line.

Protocol: one JSON line each way. Request {"id": ..., "pid": ..., "network": ...}; answer
{"ok": true, "result": <CNI result>} or {"ok": false, "error": "..."}.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import threading

from pyruntime.errors import RuntimeUserError

DEFAULT_SOCKET = "/run/pyruntime-netd.sock"
DEFAULT_ALLOWANCES = "/etc/pyruntime/netd.conf"
IFNAME = "eth0"
MAX_REQUEST = 64 * 1024
MAX_ANSWER = 4 * 1024 * 1024     # a CNI result


class Refusal(RuntimeUserError):
    pass


# -- allowances ------------------------------------------------------------------------------
def parse_allowances(text: str) -> dict[tuple[int, str], int]:
    """{(uid, network): count} from lines `USER NETWORK COUNT` (a user name or uid; # comments)."""
    import pwd

    allowed: dict[tuple[int, str], int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 3 or not words[2].isdigit():
            raise RuntimeUserError(f"allowances line {number}: expected USER NETWORK COUNT")
        user, network, count = words
        try:
            uid = int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid
        except KeyError:
            continue   # a user this host does not have gets nothing
        allowed[(uid, network)] = allowed.get((uid, network), 0) + int(count)
    return allowed


# -- the service -----------------------------------------------------------------------------
class Service:
    def __init__(self, allowances_file: str, config_dirs: list[str], cni_path: list[str] | None,
                 cache_dir: str | None = None):
        from pyruntime.cni.runtime import DEFAULT_CACHE_DIR, CNIRuntime

        self.allowances_file = allowances_file
        self.config_dirs = config_dirs
        self.cni = CNIRuntime(cni_path, cache_dir or DEFAULT_CACHE_DIR)
        self.lock = threading.Lock()
        self.live: dict[str, tuple[int, str]] = {}   # pin name -> (uid, network)
        self.attached: dict[str, dict] = {}          # pin name -> conflist, once ADD succeeded

    def allowance(self, uid: int, network: str) -> int:
        try:
            with open(self.allowances_file) as f:
                return parse_allowances(f.read()).get((uid, network), 0)
        except FileNotFoundError:
            return 0

    def reserve(self, uid: int, cid: str, network: str) -> str:
        """Count the attachment against the caller's allowance; the pin name it will use."""
        from pyruntime.state import check_id

        try:
            check_id(cid)
        except RuntimeUserError as e:
            raise Refusal(e.message) from None
        name = f"netd-{uid}-{cid}"
        with self.lock:
            if name in self.live:
                raise Refusal(f"container {cid!r} is attached already")
            allowed = self.allowance(uid, network)
            used = sum(1 for owner in self.live.values() if owner == (uid, network))
            if used >= allowed:
                raise Refusal(f"uid {uid} may attach {allowed} interface(s) to network "
                              f"{network!r} ({DEFAULT_ALLOWANCES if allowed == 0 else 'all in use'})")
            self.live[name] = (uid, network)
        return name

    def release(self, name: str) -> None:
        with self.lock:
            self.live.pop(name, None)
            self.attached.pop(name, None)

    def detach_all(self) -> None:
        """On shutdown: nothing the service attached outlives it."""
        with self.lock:
            attached = dict(self.attached)
        for name, conflist in attached.items():
            self.detach(name, conflist)

    def attach(self, uid: int, request: dict) -> tuple[str, dict, dict]:
        """Verify and ADD; (pin name, conflist, CNI result). Raises Refusal."""
        from pyruntime.network import netns
        from pyruntime.network import config as netconfig

        cid, pid, network = request.get("id"), request.get("pid"), request.get("network")
        if not isinstance(cid, str) or not isinstance(pid, int) or isinstance(pid, bool) \
                or not isinstance(network, str):
            raise Refusal('expected {"id": string, "pid": integer, "network": string}')
        name = self.reserve(uid, cid, network)
        try:
            conflist = netconfig.find_network(network, self.config_dirs)
            fd = open_netns_of(pid, uid)
            try:
                path = netns.pin_fd_path(f"/proc/self/fd/{fd}", name)
            finally:
                os.close(fd)
            try:
                result = self.cni.add(conflist, name, path, IFNAME)
            except BaseException:
                netns.unpin(name)
                raise
        except BaseException:
            self.release(name)
            raise
        with self.lock:
            self.attached[name] = conflist
        return name, conflist, result

    def detach(self, name: str, conflist: dict) -> None:
        from pyruntime.network import netns

        try:
            self.cni.delete(conflist, name, netns.path_of(name), IFNAME, network=conflist.get("name"))
        except RuntimeUserError as e:
            print(f"pyruntime-netd: detaching {name}: {e}", file=sys.stderr, flush=True)
        finally:
            netns.unpin(name)
            self.release(name)

    def handle(self, conn: socket.socket) -> None:
        """One connection: one attachment, for as long as the connection stays open."""
        with conn:
            uid = peer_uid(conn)
            try:
                request = read_request(conn)
                name, conflist, result = self.attach(uid, request)
            except RuntimeUserError as e:
                send(conn, {"ok": False, "error": e.message})
                return
            try:
                send(conn, {"ok": True, "result": result})
                while conn.recv(4096):   # anything more is ignored: only the close counts
                    pass
            except OSError:
                pass
            finally:
                self.detach(name, conflist)

    def serve(self, socket_path: str) -> None:
        """Until SIGTERM or SIGINT; then every attachment is detached and the socket goes."""
        import signal

        def stop(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        server = listen(socket_path)
        print(f"pyruntime-netd: listening on {socket_path}", file=sys.stderr, flush=True)
        try:
            while True:
                conn, _ = server.accept()
                threading.Thread(target=self.handle, args=(conn,), daemon=True).start()
        except KeyboardInterrupt:
            pass
        finally:
            server.close()
            os.unlink(socket_path)
            self.detach_all()


def listen(socket_path: str) -> socket.socket:
    try:
        os.unlink(socket_path)
    except FileNotFoundError:
        pass
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(socket_path)
    os.chmod(socket_path, 0o666)   # any user may ask; what it may have is checked per request
    server.listen(64)
    return server


def peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def open_netns_of(pid: int, uid: int) -> int:
    """An fd of the network namespace of `pid`, if it is the caller's to attach."""
    from pyruntime import linux

    try:
        fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError):
        raise Refusal(f"process {pid} does not exist") from None
    except OSError as e:
        raise Refusal(f"process {pid}: its network namespace cannot be opened: {e.strerror}") from None
    try:
        if os.fstat(fd).st_ino == os.stat("/proc/self/ns/net").st_ino:
            raise Refusal(f"process {pid} is in the host's network namespace")
        owner = linux.ns_owner_uid(fd)
        if owner != uid:
            raise Refusal(f"the network namespace of process {pid} does not belong to a user "
                          f"namespace of uid {uid}")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_line(conn: socket.socket, limit: int) -> bytes:
    """One newline-ended message (or what came before the peer closed), at most `limit` bytes."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            raise Refusal(f"message larger than {limit} bytes")
    return data


def read_request(conn: socket.socket) -> dict:
    from pyruntime import jsondoc

    data = read_line(conn, MAX_REQUEST)
    try:
        request = jsondoc.loads(data, max_depth=4)
    except jsondoc.JsonDocError as e:
        raise Refusal(f"bad request: {e}") from None
    if not isinstance(request, dict):
        raise Refusal("bad request: expected a JSON object")
    return request


def send(conn: socket.socket, message: dict) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


# -- the client (the network hook of a rootless container) -----------------------------------
def socket_path() -> str:
    return os.environ.get("PYRUNTIME_NETD_SOCKET") or DEFAULT_SOCKET


def attach(cid: str, pid: int, network: str) -> tuple[socket.socket, dict]:
    """Ask the service; (the open connection, which holds the attachment, the CNI result)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(socket_path())
    except OSError as e:
        conn.close()
        raise RuntimeUserError(f"network {network!r}: a rootless bridge needs pyruntime-netd "
                               f"({socket_path()}: {e.strerror})") from None
    try:
        send(conn, {"id": cid, "pid": pid, "network": network})
        reply = json.loads(read_line(conn, MAX_ANSWER) or b"{}")
    except (OSError, ValueError) as e:
        conn.close()
        raise RuntimeUserError(f"pyruntime-netd: no answer ({e})") from None
    if not reply.get("ok"):
        conn.close()
        raise RuntimeUserError(f"pyruntime-netd refused: {reply.get('error', 'no reason given')}")
    return conn, reply.get("result") or {}


def hold(conn: socket.socket) -> int:
    """Fork a process that keeps `conn` open (the attachment) until it is stopped; its pid."""
    pid = os.fork()
    if pid:
        conn.close()
        return pid
    try:
        os.setsid()
        keep = conn.fileno()
        os.closerange(0, keep)
        os.closerange(keep + 1, 1 << 20)
        while conn.recv(4096):
            pass
    finally:
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    """pyruntime-netd [--socket PATH] [--allowances FILE] [--config-dir DIR]... [--cni-path P]"""
    import argparse

    from pyruntime.network.config import DEFAULT_CONFIG_DIRS

    parser = argparse.ArgumentParser(prog="pyruntime-netd", description=__doc__.splitlines()[0])
    parser.add_argument("--socket", default=DEFAULT_SOCKET)
    parser.add_argument("--allowances", default=DEFAULT_ALLOWANCES)
    parser.add_argument("--config-dir", action="append", default=[])
    parser.add_argument("--cni-path", default="")
    parser.add_argument("--cache-dir", default=None)
    opts = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("pyruntime-netd: must run as root (it attaches interfaces for others)", file=sys.stderr)
        return 1
    from pyruntime.network.hook import default_cni_path

    cni_path = [d for d in opts.cni_path.split(":") if d] or default_cni_path()
    service = Service(opts.allowances, opts.config_dir or list(DEFAULT_CONFIG_DIRS), cni_path,
                      opts.cache_dir)
    try:
        service.serve(opts.socket)
    except OSError as e:
        print(f"pyruntime-netd: {opts.socket}: {e.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
