"""Reading a JSON document a caller names (config.json, --config, exec's --process file):
a regular file of bounded size, read once. Light on purpose (os and stat only): `exec
--process`, what containerd and podman send, reads its file through here on the hot path."""

from __future__ import annotations

import errno
import os
import stat

from pyruntime.errors import RuntimeUserError

# No real config comes near this: podman's, seccomp profile and all, is ~20 KB.
MAX_CONFIG_BYTES = 32 << 20


def read_bounded_file(path: str, limit: int, missing: str) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them; `missing` is the
    message when it does not exist. Anything else (a FIFO, a device) is refused unread."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise RuntimeUserError(missing) from None
    except OSError as e:
        raise RuntimeUserError(f"cannot read {path}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            what = os.strerror(errno.EISDIR) if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise RuntimeUserError(f"cannot read {path}: {what}")
        if st.st_size > limit:
            raise RuntimeUserError(f"cannot read {path}: {st.st_size} bytes, more than the "
                                   f"{limit} allowed")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
        raise RuntimeUserError(f"cannot read {path}: it grew past {limit} bytes while read")
    except OSError as e:
        raise RuntimeUserError(f"cannot read {path}: {e.strerror}") from None
    finally:
        os.close(fd)
