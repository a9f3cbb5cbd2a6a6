"""`linux.memoryPolicy`: the NUMA memory policy the container's process starts with.

The init sets it with set_mempolicy(2) just before it becomes the user's process: the policy
belongs to the calling thread, its children inherit it and execve keeps it. `exec` sets the
same policy on the process it starts, which comes from the host and inherits nothing.
"""

from __future__ import annotations

# Kernel values (linux/mempolicy.h). The flags are or'ed into the mode argument.
MODES = {
    "MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
    "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6,
}
FLAGS = {"MPOL_F_NUMA_BALANCING": 1 << 13, "MPOL_F_RELATIVE_NODES": 1 << 14,
         "MPOL_F_STATIC_NODES": 1 << 15}

# Modes that act on a set of nodes and refuse an empty one, and those that take none.
NEED_NODES = {"MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE", "MPOL_PREFERRED_MANY"}
NO_NODES = {"MPOL_DEFAULT", "MPOL_LOCAL"}
# NUMA balancing migrates pages only within a policy that confines them to its nodes.
BALANCING_MODES = {"MPOL_BIND", "MPOL_PREFERRED_MANY"}

# The largest node number accepted; well above any machine's (the kernel's own limit is
# CONFIG_NODES_SHIFT, at most 10 on common builds).
NODE_MAX = 4095


def parse_nodes(text: str) -> set[int]:
    """The node numbers of a list such as "0-3,7"; ValueError says what is wrong."""
    nodes: set[int] = set()
    if not text.strip():
        return nodes
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"{part.strip()!r} is not a node number or a range such as 0-3")
        low, high = int(first), int(last) if dash else int(first)
        if low > high:
            raise ValueError(f"range {part.strip()!r} runs backwards")
        if high > NODE_MAX:
            raise ValueError(f"node {high} is above the highest node number {NODE_MAX}")
        nodes.update(range(low, high + 1))
    return nodes


def nodemask(nodes: set[int]) -> bytes:
    """The nodes as the bit mask set_mempolicy reads: whole 64-bit words, lowest node first."""
    if not nodes:
        return b""
    words = max(nodes) // 64 + 1
    bits = sum(1 << node for node in nodes)
    return bits.to_bytes(words * 8, "little")


def apply(policy: dict | None, kernel=None) -> None:
    """Set `linux.memoryPolicy` (already validated) on this thread, through `kernel` (an
    init/kernel.py Kernel, the real one if not given)."""
    if not policy:
        return
    from pyruntime.errors import RuntimeUserError

    if kernel is None:
        from pyruntime.init.kernel import KERNEL as kernel

    mode = MODES[policy["mode"]]
    for flag in policy.get("flags") or []:
        mode |= FLAGS[flag]
    nodes = parse_nodes(policy.get("nodes") or "")
    try:
        kernel.set_mempolicy(mode, nodemask(nodes))
    except OSError as e:
        import errno
        import os

        wanted = policy["mode"] + (f" on nodes {policy['nodes']}" if nodes else "")
        why = os.strerror(e.errno)
        if nodes and e.errno == errno.EINVAL:
            why += " (are the nodes online, with memory, and in the cpuset's mems?)"
        raise RuntimeUserError(f"linux.memoryPolicy: cannot set {wanted}: {why}") from None
