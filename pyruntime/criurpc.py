"""CRIU's RPC protocol, as runc speaks it: `criu swrk <fd>` serves one request on a
SOCK_SEQPACKET socket; requests and answers are protobuf messages (criu's images/rpc.proto,
proto2); while it works, criu sends "notify" messages (with an fd for some) that the runtime
acknowledges.

Only the messages and fields the runtime uses are described here, by their field numbers in
rpc.proto, with a codec for the few wire forms they need (varints and length-delimited
fields). Fields criu sends that are not described are skipped.
"""

from __future__ import annotations

import os
import socket
import subprocess

from pyruntime.errors import RuntimeUserError

# message -> field -> (number, type): a scalar type or the name of another message
SCHEMA: dict[str, dict[str, tuple[int, str]]] = {
    "criu_req": {"type": (1, "enum"), "opts": (2, "criu_opts"), "notify_success": (3, "bool"),
                 "features": (5, "criu_features")},
    "criu_opts": {
        "images_dir_fd": (1, "int32"), "pid": (2, "int32"), "leave_running": (3, "bool"),
        "ext_unix_sk": (4, "bool"), "tcp_established": (5, "bool"),
        "evasive_devices": (6, "bool"), "shell_job": (7, "bool"), "file_locks": (8, "bool"),
        "log_level": (9, "int32"), "log_file": (10, "string"), "ps": (11, "criu_page_server_info"),
        "notify_scripts": (12, "bool"), "root": (13, "string"), "parent_img": (14, "string"),
        "track_mem": (15, "bool"), "auto_dedup": (16, "bool"), "work_dir_fd": (17, "int32"),
        "ext_mnt": (23, "ext_mount_map"), "manage_cgroups": (24, "bool"),
        "cg_root": (25, "cgroup_root"), "rst_sibling": (26, "bool"),
        "inherit_fd": (27, "inherit_fd"), "manage_cgroups_mode": (34, "enum"),
        "external": (37, "string"), "empty_ns": (38, "uint32"), "join_ns": (39, "join_namespace"),
        "freeze_cgroup": (44, "string"), "lazy_pages": (48, "bool"), "status_fd": (49, "int32"),
        "orphan_pts_master": (50, "bool"), "config_file": (51, "string"),
        "lsm_profile": (53, "string"), "lsm_mount_context": (63, "string"),
    },
    "criu_page_server_info": {"address": (1, "string"), "port": (2, "int32")},
    "ext_mount_map": {"key": (1, "string"), "val": (2, "string")},
    "join_namespace": {"ns": (1, "string"), "ns_file": (2, "string")},
    "inherit_fd": {"key": (1, "string"), "fd": (2, "int32")},
    "cgroup_root": {"ctrl": (1, "string"), "path": (2, "string")},
    "criu_features": {"mem_track": (1, "bool"), "lazy_pages": (2, "bool")},
    "criu_resp": {"type": (1, "enum"), "success": (2, "bool"), "dump": (3, "criu_dump_resp"),
                  "restore": (4, "criu_restore_resp"), "notify": (5, "criu_notify"),
                  "cr_errno": (7, "int32"), "features": (8, "criu_features"),
                  "cr_errmsg": (9, "string"), "version": (10, "criu_version")},
    "criu_dump_resp": {"restored": (1, "bool")},
    "criu_restore_resp": {"pid": (1, "int32")},
    "criu_notify": {"script": (1, "string"), "pid": (2, "int32")},
    "criu_version": {"major_number": (1, "int32"), "minor_number": (2, "int32"),
                     "gitid": (3, "string"), "sublevel": (4, "int32")},
}

# criu_req_type
DUMP, RESTORE, PRE_DUMP, NOTIFY, FEATURE_CHECK, VERSION = 1, 2, 4, 6, 9, 10
REQUEST_NAMES = {DUMP: "DUMP", RESTORE: "RESTORE", PRE_DUMP: "PRE_DUMP", NOTIFY: "NOTIFY",
                 FEATURE_CHECK: "FEATURE_CHECK", VERSION: "VERSION"}
# criu_cg_mode, by the names runc's --manage-cgroups-mode takes
CGROUP_MODES = {"soft": 3, "full": 4, "strict": 5}

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_SCALARS = ("int32", "uint32", "bool", "enum")
MAX_ANSWER = 10 * 4096      # runc's buffer: criu's answers are far smaller


# -- codec -----------------------------------------------------------------------------------
def encode(message: str, fields: dict) -> bytes:
    """`fields` (name -> value; a list for a repeated field; None is left out) as the wire
    form of `message`, in field-number order."""
    schema = SCHEMA[message]
    out = bytearray()
    for name in sorted(fields, key=lambda n: schema[n][0]):
        number, kind = schema[name]
        values = fields[name]
        for value in values if isinstance(values, list) else [values]:
            if value is None:
                continue
            if kind in _SCALARS:
                out += _varint(number << 3 | _VARINT) + _varint(int(value))
            else:
                data = value.encode() if kind == "string" else encode(kind, value)
                out += _varint(number << 3 | _LENGTH) + _varint(len(data)) + data
    return bytes(out)


def decode(message: str, data: bytes) -> dict:
    """The fields of `message` described in SCHEMA found in `data` (the last one of each)."""
    by_number = {number: (name, kind) for name, (number, kind) in SCHEMA[message].items()}
    found: dict = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _read_varint(data, pos)
        elif wire == _LENGTH:
            length, pos = _read_varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
            if pos > len(data):
                raise ValueError(f"{message}: field {number} runs past the end")
        elif wire == _FIXED64:
            value, pos = None, pos + 8
        elif wire == _FIXED32:
            value, pos = None, pos + 4
        else:
            raise ValueError(f"{message}: field {number} has wire type {wire}")
        if number not in by_number or value is None:
            continue
        name, kind = by_number[number]
        if kind == "bool":
            found[name] = bool(value)
        elif kind == "int32":
            found[name] = _to_int32(value)
        elif kind in ("uint32", "enum"):
            found[name] = value & 0xFFFFFFFF
        elif kind == "string":
            found[name] = bytes(value).decode(errors="replace")
        else:
            found[name] = decode(kind, bytes(value))
    return found


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1          # negative int32s go out as ten bytes, as proto2 wants
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _to_int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


# -- one criu swrk process -------------------------------------------------------------------
class CriuFailed(RuntimeUserError):
    """criu answered that the request failed (or died): the message names the log to read."""


def first_error(log_path: str | None) -> str | None:
    """The first "Error (file:line): what" line of a criu log, as "what": usually the cause,
    the lines after it being its consequences."""
    if not log_path:
        return None
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                _, marker, rest = line.partition("Error (")
                if marker:
                    return rest.partition("): ")[2].strip() or None
    except OSError:
        return None
    return None


def failure_message(request_type: int, answer: dict, log_path: str | None) -> str:
    """runc's "criu failed: type DUMP errno 0" and the log file (if criu wrote one for this
    request), on one line, with what went wrong when criu or its log says it."""
    text = f"criu failed: type {REQUEST_NAMES.get(request_type, request_type)} errno {answer.get('cr_errno', 0)}"
    reason = answer.get("cr_errmsg") or first_error(log_path)
    if reason:
        text += f" ({reason})"
    return text + (f"; log file: {log_path}" if log_path else "")


def _file_identity(path: str | None):
    try:
        st = os.stat(path) if path else None
    except OSError:
        return None
    return st and (st.st_ino, st.st_size, st.st_mtime_ns)


class Swrk:
    """`criu swrk` started with one end of a socketpair; `pass_fds` are inherited by criu
    under the same numbers (the image and work directories, namespaces, a status fd)."""

    def __init__(self, criu: str, pass_fds=(), log_path: str | None = None,
                 inherit_stdio: bool = False):
        self.log_path = log_path
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # criu's stdio is a restored process's, or else nothing (it logs to its log file)
        stdio = None if inherit_stdio else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen([criu, "swrk", str(theirs.fileno())],
                                            pass_fds=(theirs.fileno(), *pass_fds),
                                            stdin=stdio, stdout=stdio, stderr=stdio)
        except OSError as e:
            self.sock.close()
            raise RuntimeUserError(f"--criu {criu}: cannot run it ({e.strerror}); checkpoint "
                                   "and restore need criu installed") from None
        finally:
            # closed here so that criu dying is an EOF to us, not a hang
            theirs.close()

    @property
    def pid(self) -> int:
        return self.process.pid

    def call(self, request: dict, on_notify=None) -> dict:
        """Send `request` (a criu_req) and answer criu's notifications with `on_notify(notify,
        fds)` until its final answer, which is returned if it succeeded."""
        from pyruntime import log

        log.debug(f"criu {REQUEST_NAMES.get(request['type'], request['type'])}: {request.get('opts') or {}}")
        log_before = _file_identity(self.log_path)
        self.sock.send(encode("criu_req", request))
        while True:
            answer, fds = self._receive(request["type"])
            try:
                if not answer.get("success"):
                    # a log that this request did not write is no evidence (a feature check
                    # writes none; an earlier dump's may be there)
                    written = _file_identity(self.log_path) not in (None, log_before)
                    raise CriuFailed(failure_message(request["type"], answer,
                                                     self.log_path if written else None))
                if answer.get("type") != NOTIFY:
                    return answer
                if on_notify is not None:
                    on_notify(answer.get("notify") or {}, fds)
            finally:
                for fd in fds:
                    os.close(fd)
            self.sock.send(encode("criu_req", {"type": NOTIFY, "notify_success": True}))

    def _receive(self, request_type: int) -> tuple[dict, list[int]]:
        data, ancillary, flags, _ = self.sock.recvmsg(MAX_ANSWER, socket.CMSG_SPACE(16 * 4))
        fds: list[int] = []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % 4
                fds += list(memoryview(payload)[:usable].cast("i"))
        if not data:
            for fd in fds:
                os.close(fd)
            status = self.process.wait()
            raise CriuFailed(f"criu failed: type {REQUEST_NAMES.get(request_type, request_type)}: "
                             f"criu exited with status {status} before answering"
                             + (f"; log file: {self.log_path}" if self.log_path else ""))
        if flags & socket.MSG_TRUNC:
            for fd in fds:
                os.close(fd)
            raise CriuFailed("criu's answer does not fit the buffer")
        try:
            return decode("criu_resp", data), fds
        except ValueError as e:
            for fd in fds:
                os.close(fd)
            raise CriuFailed(f"criu's answer cannot be read: {e}") from None

    def finish(self, request_type: int, timeout: float = 60.0) -> None:
        """After the final answer: let criu exit and check that it did so cleanly. A
        pre-dump's criu waits for a next request that never comes, so its status is moot."""
        self.sock.close()
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        if status != 0 and request_type != PRE_DUMP:
            raise CriuFailed(f"criu failed: type {REQUEST_NAMES.get(request_type, request_type)}: "
                             f"exit status {status}"
                             + (f"; log file: {self.log_path}" if self.log_path else ""))

    def abort(self) -> None:
        """Stop criu after a failure on our side: a closed socket makes it give up (and undo
        a restore half done); one that does not is killed."""
        self.sock.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def version(criu: str) -> int:
    """criu's version as runc compares it: major * 10000 + minor * 100 + sublevel."""
    swrk = Swrk(criu)
    try:
        answer = swrk.call({"type": VERSION})
    except BaseException:
        swrk.abort()
        raise
    swrk.finish(VERSION)
    found = answer.get("version") or {}
    return found.get("major_number", 0) * 10000 + found.get("minor_number", 0) * 100 \
        + found.get("sublevel", 0)
