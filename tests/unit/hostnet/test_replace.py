"""Backend.replace's input: rules.replace_script, and the legacy translation of its rules."""

from __future__ import annotations

import pytest

from pyruntime.hostnet import rules


def test_replace_script_declares_removes_writes_then_drops_chains():
    plan = rules.Plan(4, "t", [("nat", "PYR-A")],
                      [rules.Rule("nat", "PYR-A", ("-j", "RETURN")),
                       rules.Rule("nat", "OUTPUT", ("-j", "PYR-A"), first=True)])
    owned = {"nat": {"chains": {"PYR-OLD", "PYR-B"}, "rules": ["-A PREROUTING -j PYR-OLD"]}}
    assert rules.replace_script(owned, [plan]).splitlines() == [
        "*nat",
        ":PYR-A - [0:0]",
        "-D PREROUTING -j PYR-OLD",
        "-A PYR-A -j RETURN",
        "-I OUTPUT 1 -j PYR-A",
        "-F PYR-B", "-F PYR-OLD",
        "-X PYR-B", "-X PYR-OLD",
        "COMMIT"]


def test_replace_script_tables_apart_and_empty():
    assert rules.replace_script({}, []) == ""
    assert rules.replace_script({}, [rules.Plan(4, "t")]) == ""
    plan = rules.Plan(4, "t", [("filter", "PYR-F")], [rules.Rule("nat", "OUTPUT", ("-j", "ACCEPT"))])
    assert rules.replace_script({}, [plan]).splitlines() == [
        "*filter", ":PYR-F - [0:0]", "COMMIT", "*nat", "-A OUTPUT -j ACCEPT", "COMMIT"]


def test_iptc_service_rule_translation():
    iptc = pytest.importorskip("iptc")
    from pyruntime.hostnet import fw_iptables_legacy
    from pyruntime.services import plan, spec
    svc = spec.parse("web", "10.96.0.10:80/tcp", ["10.0.0.2:8080", "10.0.0.3:8080"])
    # (a jump to a chain of ours needs that chain in a table: only the matches are built here)
    built = {r.save_line(): fw_iptables_legacy.build_rule(iptc, 4, r.args[:r.args.index("-j")] + ("-j", "ACCEPT")
                                                          if "PYR-" in r.args[-1] else r.args)
             for r in plan.build([svc], 4).rules}
    jump = next(v for k, v in built.items() if "statistic" in k)
    stat = next(m for m in jump.matches if m.name == "statistic")
    assert stat.mode == "random" and stat.probability.startswith("0.5")
    mark = next(v for k, v in built.items() if "addrtype" in k)
    assert mark.matches[0].name == "addrtype" and mark.target.name == "MARK"
    dnat = next(v for k, v in built.items() if "DNAT" in k)
    assert dnat.protocol == "tcp" and dnat.target.name == "DNAT"
    assert dnat.matches[0].comment == "pyruntime-service web -> 10.0.0.2:8080"
