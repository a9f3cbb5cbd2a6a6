"""The services' nat rules and reading them back (pyruntime.services.plan)."""

from __future__ import annotations

from pyruntime.hostnet import rules
from pyruntime.services import plan, spec


def web(*backends):
    return spec.parse("web", "10.96.0.10:80/tcp", list(backends) or ["10.0.0.2:8080", "10.0.0.3:8080",
                                                                    "10.0.0.4:8080"])


def dump_of(p: rules.Plan, extra: str = "") -> dict:
    """What iptables-save would print for a written plan (rules in chain order)."""
    lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]"]
    lines += [f":{c} - [0:0]" for _, c in p.chains]
    lines += [r.save_line() for r in p.rules] + ([extra] if extra else []) + ["COMMIT"]
    return rules.parse_save("\n".join(lines))


def test_probabilities_are_kube_proxys_as_stored():
    assert plan.probability(1) == "1.00000000000"
    assert plan.probability(2) == "0.50000000000"
    assert plan.probability(3) == "0.33333333349"      # round(2^31 / 3) / 2^31, as printed
    assert plan.probability(4) == "0.25000000000"
    # each of n backends gets 1/n: 1/n, then (1 - 1/n) * 1/(n-1), ...
    for n in (2, 3, 5, 7):
        left, shares = 1.0, []
        for i in range(n - 1):
            p = float(plan.probability(n - i))
            shares.append(left * p)
            left *= 1 - p
        shares.append(left)
        assert all(abs(s - 1 / n) < 1e-8 for s in shares)


def test_service_chains_and_rules():
    p = plan.build([web()], 4)
    svc = plan.service_chain("web")
    seps = [plan.endpoint_chain("web", "tcp", b) for b in web().backends]
    assert [c for _, c in p.chains] == ["PYR-SERVICES", svc] + seps
    assert len(svc) <= 28 and all(len(c) <= 28 for c in seps) and len(set(seps)) == 3
    lines = [r.save_line() for r in p.rules]
    assert lines[0] == ('-A PYR-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment '
                        f'"pyruntime-service web 10.96.0.10:80/tcp" -m tcp --dport 80 -j {svc}')
    jumps = [line for line in lines if line.startswith(f"-A {svc} ") and "PYR-SEP-" in line]
    assert jumps == [
        (f'-A {svc} -m comment --comment "pyruntime-service web -> 10.0.0.2:8080" -m statistic '
         f'--mode random --probability 0.33333333349 -j {seps[0]}'),
        (f'-A {svc} -m comment --comment "pyruntime-service web -> 10.0.0.3:8080" -m statistic '
         f'--mode random --probability 0.50000000000 -j {seps[1]}'),
        f'-A {svc} -m comment --comment "pyruntime-service web -> 10.0.0.4:8080" -j {seps[2]}']
    assert f'-A {seps[0]} -p tcp -m comment --comment "pyruntime-service web -> 10.0.0.2:8080" ' \
           '-m tcp -j DNAT --to-destination 10.0.0.2:8080' in lines
    assert f'-A {seps[0]} -s 10.0.0.2/32 -m comment --comment "pyruntime-service web -> 10.0.0.2:8080" ' \
           '-j MARK --set-xmark 0x4000/0x4000' in lines
    host = [r for r in p.rules if r.chain in plan.HOST_CHAINS]
    assert [(r.chain, r.first) for r in host] == [("PREROUTING", True), ("OUTPUT", True), ("POSTROUTING", True)]
    assert host[2].args[:4] == ("-m", "mark", "--mark", "0x4000/0x4000") and host[2].args[-1] == "MASQUERADE"


def test_families_are_apart_and_empty_means_nothing():
    v6 = spec.parse("v6", "[fd00::10]:80/udp", ["[fd00::2]:80"])
    assert not plan.build([web()], 6).chains and not plan.build([web()], 6).rules
    p = plan.build([web(), v6], 6)
    lines = [r.save_line() for r in p.rules]
    assert any("-d fd00::10/128 -p udp" in line and "--dport 80" in line for line in lines)
    assert any("DNAT --to-destination [fd00::2]:80" in line for line in lines)
    assert not any("10.96.0.10" in line for line in lines)


def test_services_read_back_from_a_dump():
    dns = spec.parse("dns", "10.96.0.53:53/udp", ["10.0.0.9:53"])
    tables = dump_of(plan.build([web(), dns], 4))
    assert plan.services_in(tables) == [dns, web()]
    # backends keep their order, even ones the hash would sort differently
    svc = web("10.0.0.4:80", "10.0.0.2:80")
    assert plan.services_in(dump_of(plan.build([svc], 4)))[0].backends == svc.backends


def test_transaction_from_nothing_writes_everything():
    remove, write = plan.transaction({}, [web()], 4)
    assert remove == {} and write == plan.build([web()], 4)


def test_transaction_replacing_backends():
    tables = dump_of(plan.build([web()], 4), extra="-A PREROUTING -j OTHER")
    fewer = web("10.0.0.2:8080", "10.0.0.3:8080")
    remove, write = plan.transaction(tables, [fewer], 4)
    gone = plan.endpoint_chain("web", "tcp", web().backends[2])
    assert remove == {"nat": {"chains": {gone}, "rules": []}}
    # the built-in chains' rules are there already and stay put; the rest is rewritten
    assert not any(r.chain in plan.HOST_CHAINS for r in write.rules)
    assert write.chains == plan.build([fewer], 4).chains
    assert "0.50000000000" in " ".join(r.save_line() for r in write.rules)


def test_transaction_to_no_service_removes_all_ours_and_nothing_else():
    tables = dump_of(plan.build([web()], 4), extra="-A PREROUTING -j OTHER")
    remove, write = plan.transaction(tables, [], 4)
    assert not write.chains and not write.rules
    assert remove["nat"]["chains"] == {c for _, c in plan.build([web()], 4).chains}
    assert sorted(remove["nat"]["rules"]) == sorted(r.save_line() for r in plan.host_rules())
    script = rules.replace_script(remove, [write])
    assert "OTHER" not in script and "-X PYR-SERVICES" in script


def test_transaction_drops_a_host_rule_left_twice():
    p = plan.build([web()], 4)
    tables = dump_of(p, extra=plan.host_rules()[0].save_line())
    remove, _ = plan.transaction(tables, [web()], 4)
    assert remove["nat"]["rules"] == [plan.host_rules()[0].save_line()] and not remove["nat"]["chains"]


def test_a_mangled_comment_is_no_service_and_its_chains_are_leftovers():
    p = plan.build([web()], 4)
    tables = dump_of(p)
    tables["nat"]["rules"] = [r.replace("10.96.0.10:80/tcp", "10.96.0.10:http") for r in tables["nat"]["rules"]]
    assert plan.services_in(tables) == []
    remove, write = plan.transaction(tables, [], 4)
    assert remove["nat"]["chains"] == {c for _, c in p.chains} and not write.rules
