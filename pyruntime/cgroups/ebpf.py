"""Device access control on the unified hierarchy: a BPF_PROG_TYPE_CGROUP_DEVICE program.

cgroup v2 has no devices.allow/deny files; the kernel instead runs a BPF program attached to
the cgroup for every device open/mknod and allows the access when it returns 1. The program
is generated from the same ordered rule list the v1 driver writes (devices.effective_rules):
rules are tested from the last to the first and the first match decides, so later rules
override earlier ones. An allow rule matches when it covers every requested access bit; a
deny rule when it covers any of them. Nothing matching means deny.

`program(rules)` is pure (bytes of struct bpf_insn); `attach(cgroup_dir, rules)` loads it
through the syscall layer and attaches it to the cgroup, replacing the one attached before.
"""

from __future__ import annotations

import struct

# struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }, where access_type is
# (access << 16) | device type.
_DEV_TYPE = {"b": 1, "c": 2}
_ACCESS = {"m": 1, "r": 2, "w": 4}
_ALL_ACCESS = 7

# Opcodes (class | op | source).
_LDX_MEM_W = 0x61
_ALU32_MOV_X = 0xBC
_ALU32_AND_K = 0x54
_ALU32_RSH_K = 0x74
_ALU64_MOV_K = 0xB7
_JMP_JNE_K = 0x55
_JMP_JEQ_K = 0x15
_JMP_EXIT = 0x95

R0, R1, R2, R3, R4, R5 = range(6)


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _access_bits(access: str) -> int:
    bits = 0
    for c in access:
        bits |= _ACCESS[c]
    return bits


def _rule_block(rule) -> list[tuple]:
    """Instructions for one rule; conditional jumps carry None as "skip to the next rule"."""
    block: list[tuple] = []
    if rule.type != "a":
        block.append((_JMP_JNE_K, R2, 0, None, _DEV_TYPE[rule.type]))
    if rule.type != "a" and rule.major is not None:
        block.append((_JMP_JNE_K, R4, 0, None, rule.major))
    if rule.type != "a" and rule.minor is not None:
        block.append((_JMP_JNE_K, R5, 0, None, rule.minor))
    bits = _access_bits(rule.access)
    if bits != _ALL_ACCESS:
        block.append((_ALU32_MOV_X, R1, R3, 0, 0))
        if rule.allow:
            # skip unless (requested & ~rule_access) == 0
            block.append((_ALU32_AND_K, R1, 0, 0, _ALL_ACCESS & ~bits))
            block.append((_JMP_JNE_K, R1, 0, None, 0))
        else:
            # skip unless (requested & rule_access) != 0
            block.append((_ALU32_AND_K, R1, 0, 0, bits))
            block.append((_JMP_JEQ_K, R1, 0, None, 0))
    block.append((_ALU64_MOV_K, R0, 0, 0, 1 if rule.allow else 0))
    block.append((_JMP_EXIT, 0, 0, 0, 0))
    return block


def program(rules) -> bytes:
    """The device filter for `rules` (devices.Rule list, in config order)."""
    out = [
        _insn(_LDX_MEM_W, R2, R1, 0),        # r2 = ctx->access_type
        _insn(_ALU32_MOV_X, R3, R2),         # r3 = r2
        _insn(_ALU32_AND_K, R2, imm=0xFFFF),  # r2 = device type
        _insn(_ALU32_RSH_K, R3, imm=16),     # r3 = requested access bits
        _insn(_LDX_MEM_W, R4, R1, 4),        # r4 = major
        _insn(_LDX_MEM_W, R5, R1, 8),        # r5 = minor
    ]
    for rule in reversed(list(rules)):
        block = _rule_block(rule)
        for i, (code, dst, src, off, imm) in enumerate(block):
            if off is None:
                off = len(block) - i - 1     # past the rest of this block
            out.append(_insn(code, dst, src, off, imm))
        if len(block) == 2:
            # A rule matching every access ("a *:* rwm") decides alone; the verifier refuses
            # the unreachable instructions that would follow it.
            return b"".join(out)
    out.append(_insn(_ALU64_MOV_K, R0, imm=0))  # nothing matched: deny
    out.append(_insn(_JMP_EXIT))
    return b"".join(out)


def attach(cgroup_dir: str, rules) -> None:
    """Load the filter for `rules` and attach it to the cgroup at `cgroup_dir`.

    Attaching with BPF_F_ALLOW_OVERRIDE replaces the program this runtime attached before
    (an update) and still lets a nested runtime attach its own below.
    """
    import os

    from pyruntime import linux

    prog = linux.bpf_prog_load(linux.BPF_PROG_TYPE_CGROUP_DEVICE, program(rules))
    try:
        fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            linux.bpf_prog_attach(fd, prog, linux.BPF_CGROUP_DEVICE, linux.BPF_F_ALLOW_OVERRIDE)
        finally:
            os.close(fd)
    finally:
        os.close(prog)
