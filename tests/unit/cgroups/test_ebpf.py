"""The v2 device filter program, run through a small interpreter of the opcodes it uses."""

import struct

import pytest

from pyruntime.cgroups import devices, ebpf


def run(prog: bytes, dev_type: str, major: int, minor: int, access: str) -> int:
    """Execute the program for one access the way the kernel would call it."""
    ctx = [(ebpf._access_bits(access) << 16) | ebpf._DEV_TYPE[dev_type], major, minor]
    regs = [0] * 11
    insns = [struct.unpack("<BBhi", prog[i:i + 8]) for i in range(0, len(prog), 8)]
    pc = 0
    for _ in range(10000):
        code, regs_byte, off, imm = insns[pc]
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc += 1
        if code == ebpf._LDX_MEM_W:
            assert src == 1 and off % 4 == 0
            regs[dst] = ctx[off // 4]
        elif code == ebpf._ALU32_MOV_X:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif code == ebpf._ALU32_AND_K:
            regs[dst] = regs[dst] & imm & 0xFFFFFFFF
        elif code == ebpf._ALU32_RSH_K:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == ebpf._ALU64_MOV_K:
            regs[dst] = imm
        elif code == ebpf._JMP_JNE_K:
            pc += off if regs[dst] != imm else 0
        elif code == ebpf._JMP_JEQ_K:
            pc += off if regs[dst] == imm else 0
        elif code == ebpf._JMP_EXIT:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    raise AssertionError("program did not terminate")


def rules(*entries):
    return devices.effective_rules(list(entries))


@pytest.mark.parametrize("dev,access,allowed", [
    (("c", 1, 3), "rw", 1),      # /dev/null: default rule
    (("c", 1, 11), "r", 0),      # /dev/kmsg: not listed
    (("c", 136, 7), "rw", 1),    # a pty
    (("c", 42, 0), "m", 1),      # mknod of any char device
    (("c", 42, 0), "r", 0),      # ... but no access to it
    (("b", 8, 0), "r", 0),
    (("b", 8, 0), "m", 1),
])
def test_defaults(dev, access, allowed):
    assert run(ebpf.program(rules({"allow": False, "access": "rwm"})), *dev, access) == allowed


def test_later_rules_override_earlier_ones():
    prog = ebpf.program(rules(
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "r"},
        {"allow": True, "type": "b", "major": 8, "access": "rw"},
        {"allow": False, "type": "b", "major": 8, "minor": 1, "access": "w"},
    ))
    assert run(prog, "c", 1, 11, "r") == 1
    assert run(prog, "c", 1, 11, "rw") == 0    # allow covers r only
    assert run(prog, "b", 8, 0, "rw") == 1
    assert run(prog, "b", 8, 1, "r") == 1
    assert run(prog, "b", 8, 1, "rw") == 0     # the later deny of w wins
    assert run(prog, "c", 1, 3, "w") == 1


def test_allow_all_is_one_decision():
    # "allow everything" (no deny-all first) ends the program at that rule.
    prog = ebpf.program([devices.Rule(True, "a", None, None, "rwm")])
    assert len(prog) == 8 * 8
    assert run(prog, "b", 7, 7, "rwm") == 1


def test_instructions_are_well_formed():
    prog = ebpf.program(rules({"allow": False, "access": "rwm"}))
    assert len(prog) % 8 == 0
    last = struct.unpack("<BBhi", prog[-8:])
    assert last[0] == ebpf._JMP_EXIT
