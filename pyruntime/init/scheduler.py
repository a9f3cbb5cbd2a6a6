"""`process.scheduler`: the scheduling policy and its parameters, set with sched_setattr(2).

Set by the init (and by `exec` for the process it starts) while it still holds every
capability: a real-time policy or a negative nice value needs CAP_SYS_NICE.
"""

from __future__ import annotations

# Kernel values (linux/sched.h, uapi/linux/sched.h). SCHED_ISO is reserved and not implemented
# by Linux: the kernel refuses it, and that refusal is what the user sees.
POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_ISO": 4,
            "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
         "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
         "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
         "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}

REALTIME = {"SCHED_FIFO", "SCHED_RR"}
FAIR = {"SCHED_OTHER", "SCHED_BATCH"}     # the policies a nice value means something to
NICE_MIN, NICE_MAX = -20, 19
RT_PRIORITY_MIN, RT_PRIORITY_MAX = 1, 99
DL_RUNTIME_MIN = 1 << 10                  # ns: the deadline class's resolution (DL_SCALE)
DL_LIMIT = 1 << 63                        # deadline parameters are signed 64-bit in the kernel


def apply(process: dict, kernel=None) -> None:
    """Set `process.scheduler` (already validated) on this thread, through `kernel` (an
    init/kernel.py Kernel, the real one if not given)."""
    wanted = process.get("scheduler")
    if not wanted:
        return
    from pyruntime.errors import RuntimeUserError

    if kernel is None:
        from pyruntime.init.kernel import KERNEL as kernel

    # an exec's --process file has not been through the schema: unknown names are errors here
    policy = POLICIES.get(wanted.get("policy"))
    if policy is None:
        raise RuntimeUserError(f"process.scheduler.policy: unknown policy {wanted.get('policy')!r}")
    flags = 0
    for flag in wanted.get("flags") or []:
        if flag not in FLAGS:
            raise RuntimeUserError(f"process.scheduler.flags: unknown flag {flag!r}")
        flags |= FLAGS[flag]
    try:
        kernel.sched_setattr(policy, flags, wanted.get("nice", 0),
                            wanted.get("priority", 0), wanted.get("runtime", 0),
                            wanted.get("deadline", 0), wanted.get("period", 0))
    except OSError as e:
        import errno
        import os

        why = os.strerror(e.errno)
        if e.errno == errno.EPERM and wanted["policy"] in REALTIME | {"SCHED_DEADLINE"}:
            # with realtime group scheduling (cgroup v1) a cgroup without realtime CPU time
            # refuses real-time tasks, even root's
            why += (" (it needs CAP_SYS_NICE, and on cgroup v1 realtime CPU time for the "
                    "container's cgroup: linux.resources.cpu.realtimeRuntime)")
        raise RuntimeUserError(f"process.scheduler: cannot set {wanted['policy']}: {why}") from None
