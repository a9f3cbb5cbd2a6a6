"""/etc/hosts and /etc/resolv.conf for a networked container.

The hook renders both from the CNI result (the container's addresses and DNS) into a
per-container directory on the host, then bind-mounts them over the rootfs's /etc/hosts and
/etc/resolv.conf inside the container's mount namespace. It does that at createRuntime time,
before pivot_root: the mounts lie under the new root and move with it, are private to the
container, and the image's own files are never written.
"""

from __future__ import annotations

import ipaddress
import os

# Not under /run/pyruntime: that is the runtime's default state root, whose entries are
# container ids (a container named "network" would collide).
FILES_DIR = "/run/pyruntime-network"
FILES = ("hosts", "resolv.conf")


def files_dir() -> str:
    """root's FILES_DIR; a rootless caller's own directory (it cannot write root's)."""
    return FILES_DIR if os.geteuid() == 0 else f"/tmp/pyruntime-network-{os.geteuid()}"


def container_dir(container_id: str) -> str:
    return os.path.join(files_dir(), container_id)


def make_container_dir(container_id: str) -> str:
    """Create (if need be) and return the container's directory. A rootless caller's base is
    private to it: one another user planted in /tmp first is refused."""
    from pyruntime.rootless import check_private_root

    base = files_dir()
    os.makedirs(base, mode=0o755 if os.geteuid() == 0 else 0o700, exist_ok=True)
    check_private_root(base)
    directory = os.path.join(base, container_id)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    return directory


def result_addresses(result: dict) -> list[str]:
    """Addresses of the container's own interfaces (a CNI 1.0 result), without prefix."""
    interfaces = result.get("interfaces") or []
    own = {i for i, iface in enumerate(interfaces) if iface.get("sandbox")}
    addresses = []
    for ip in result.get("ips") or []:
        index = ip.get("interface")
        if own and index is not None and index not in own:
            continue
        addresses.append(str(ipaddress.ip_interface(ip["address"]).ip))
    return addresses


def render_hosts(hostname: str, addresses: list[str]) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{address}\t{hostname}" for address in addresses]
    return "\n".join(lines) + "\n"


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def parse_resolv_conf(text: str) -> dict:
    nameservers, search, options = [], [], []
    for line in text.splitlines():
        words = line.split("#")[0].split(";")[0].split()
        if len(words) < 2:
            continue
        if words[0] == "nameserver":
            nameservers.append(words[1])
        elif words[0] in ("search", "domain"):
            search = words[1:]
        elif words[0] == "options":
            options += words[1:]
    return {"nameservers": nameservers, "search": search, "options": options}


def render_resolv_conf(dns: dict | None, host_text: str) -> str:
    """The network's DNS settings when the result has some; otherwise the host's, without
    loopback resolvers (127.0.0.53 on the host is not reachable from the container)."""
    dns = dns or {}
    host = parse_resolv_conf(host_text)
    nameservers = dns.get("nameservers") or [n for n in host["nameservers"] if not _is_loopback(n)]
    search = dns.get("search") or ([dns["domain"]] if dns.get("domain") else host["search"])
    options = dns.get("options") or host["options"]
    lines = [f"nameserver {n}" for n in nameservers]
    if search:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + ("\n" if lines else "")


def write_files(container_id: str, hostname: str, result: dict,
                host_resolv: str = "/etc/resolv.conf") -> dict[str, str]:
    """Write hosts and resolv.conf for the container; {container path: host file}."""
    try:
        with open(host_resolv) as f:
            host_text = f.read()
    except OSError:
        host_text = ""
    directory = make_container_dir(container_id)
    contents = {"hosts": render_hosts(hostname, result_addresses(result)),
                "resolv.conf": render_resolv_conf(result.get("dns"), host_text)}
    written = {}
    for name, text in contents.items():
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        written[f"/etc/{name}"] = path
    return written


def remove_files(container_id: str) -> None:
    import shutil

    shutil.rmtree(container_dir(container_id), ignore_errors=True)


def mount_into_container(pid: int, rootfs: str, files: dict[str, str]) -> None:
    """Bind `files` ({container path: host file}) over the rootfs inside the mount namespace of
    `pid`. A forked child does the setns (it changes the caller's whole filesystem view); it
    reports failure as one line on a pipe."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_end)
        code = 0
        try:
            _enter_and_mount(pid, rootfs, files)
        except BaseException as e:  # report anything: the parent turns it into one message
            os.write(write_end, str(e).encode()[:4000] or repr(e).encode())
            code = 1
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        message = f.read().decode(errors="replace")
    _, status = os.waitpid(child, 0)
    if status != 0:
        raise OSError(message or f"mounting network files failed (status {status})")


def _enter_and_mount(pid: int, rootfs: str, files: dict[str, str]) -> None:
    from pyruntime import linux
    from pyruntime.init.inroot import Root
    from pyruntime.init.rootfs import bind_onto

    fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    linux.setns(fd, linux.CLONE_NEWNS)
    os.close(fd)
    # The container's processes may already be changing its tree: each target is resolved
    # inside the rootfs by the kernel and the file is attached to exactly what was opened.
    with Root(rootfs) as root:
        for destination, source in files.items():
            try:
                target = root.make_file(destination)
                try:
                    bind_onto(target, source, what=destination)
                finally:
                    os.close(target)
            except OSError as e:
                raise OSError(f"bind {source} on {destination}: {e.strerror or e}") from None


def read_json(path: str) -> dict | None:
    from pyruntime import jsondoc

    try:
        with open(path, "rb") as f:
            return jsondoc.loads(jsondoc.read_limited(f))
    except (OSError, jsondoc.JsonDocError):
        return None
