"""The "iptables" firewall backend: legacy x_tables through python-iptables, which builds
libiptc rules from the shared rule model.

Imported only when this backend is in use, and python-iptables only once it writes: it is slow
to import.
libxtables loads each extension (MASQUERADE, DNAT, ...) for a single address family per
process, so every family's update runs in a forked child that has loaded none yet.
"""

from __future__ import annotations

import os
import shlex
import sys

from pyruntime.hostnet import rules
from pyruntime.hostnet.errors import IO, KINDS, HostNetError
from pyruntime.hostnet.firewall import Backend


class IptablesLegacyBackend(Backend):
    name = "iptables"
    save_tools = {4: "iptables-legacy-save", 6: "ip6tables-legacy-save"}

    def write(self, plans: list[rules.Plan]) -> None:
        write(plans)

    def delete(self, family: int, owned: dict[str, dict]) -> None:
        delete(family, owned)

    def replace(self, family: int, owned: dict[str, dict], plans: list[rules.Plan]) -> None:
        _iptc()
        _in_child(_replace_family, family, owned, plans)


def _locate_libraries() -> None:
    """Tell python-iptables where libiptc and libxtables are, through its own environment
    variables, so it does not run ldconfig and search sys.path for them: with the distutils
    redirect below, its import drops from ~400 ms to ~90 ms."""
    multiarch = getattr(sys.implementation, "_multiarch", "")
    for libdir in (f"/usr/lib/{multiarch}" if multiarch else "", "/usr/lib64", "/usr/lib"):
        if not libdir or not os.path.isdir(libdir):
            continue
        versions = [n.rsplit(".so.", 1)[1] for n in os.listdir(libdir)
                    if n.startswith("libxtables.so.") and n.rsplit(".so.", 1)[1].isdigit()]
        if not versions:
            continue
        os.environ.setdefault("IPTABLES_LIBDIR", libdir)
        if os.path.isdir(os.path.join(libdir, "xtables")):
            os.environ.setdefault("XTABLES_LIBDIR", os.path.join(libdir, "xtables"))
        os.environ.setdefault("PYTHON_IPTABLES_XTABLES_VERSION", versions[0])
        break
    # python-iptables imports distutils only for one path function; in a venv with setuptools that
    # import is redirected to setuptools' heavy copy, unless the redirect is removed first
    hack = sys.modules.get("_distutils_hack")
    if hack is not None and hasattr(hack, "remove_shim"):
        hack.remove_shim()


def _iptc():
    if "iptc" in sys.modules:
        return sys.modules["iptc"]
    _locate_libraries()
    from pyruntime.linux import libraries

    # python-iptables asks find_library for every spelling of every library it tries (libc,
    # ip4tc, ip6tc, its own xtwrapper, ...): answered from IPTABLES_LIBDIR (directories
    # joined by ':', as python-iptables reads it), a name not there gets None at once and
    # python-iptables goes on to look for it by path (its own extension, in site-packages)
    libdirs = os.environ.get("IPTABLES_LIBDIR", "").split(":")
    try:
        return libraries.import_with_libraries_from("iptc", [d for d in libdirs if d])
    except Exception as e:  # missing libiptc / xtables shows up as OSError or XTablesError
        raise HostNetError(IO, "python-iptables is not usable", str(e)) from None


def _table(iptc, family: int, name: str):
    """The table, read from the kernel once: each read copies the whole table, which grows
    with every container, so there is no refresh before or after the commit (the forked child
    that does the update exits right after it)."""
    cls = iptc.Table if family == 4 else iptc.Table6
    return cls(name, autocommit=False)


def build_rule(iptc, family: int, args: list[str] | tuple[str, ...]):
    """An iptc.Rule from iptables arguments (the subset rules.py writes)."""
    rule = iptc.Rule() if family == 4 else iptc.Rule6()
    current = None
    negate = False
    i = 0
    while i < len(args):
        flag = args[i]
        if flag == "!":
            negate = True
            i += 1
            continue
        value = args[i + 1].strip('"')
        text = ("!" + value) if negate else value
        negate = False
        if flag == "-s":
            rule.src = text
        elif flag == "-d":
            rule.dst = text
        elif flag == "-i":
            rule.in_interface = text
        elif flag == "-o":
            rule.out_interface = text
        elif flag == "-p":
            rule.protocol = value
        elif flag == "-m":
            current = rule.create_match(value)
        elif flag == "-j":
            current = rule.create_target(value)
        elif flag.startswith("--") and current is not None:
            setattr(current, flag[2:].replace("-", "_"), text)
        else:
            raise ValueError(f"unsupported iptables argument {flag}")
        i += 2
    return rule


def _in_child(fn, *args) -> None:
    """Run fn in a forked child; its HostNetError (or any failure) comes back as ours."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        code = 0
        try:
            fn(*args)
        except HostNetError as e:
            os.write(write_end, f"{e.kind}\n{e.msg}\n{e.details}".encode())
            code = 1
        except BaseException as e:
            os.write(write_end, f"{IO}\niptables (legacy) update failed\n{type(e).__name__}: {e}".encode())
            code = 1
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        report = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if status != 0:
        kind, msg, details = (report.split("\n", 2) + ["", "", ""])[:3] if report else ("", "", "")
        raise HostNetError(kind if kind in KINDS else IO,
                           msg or "iptables (legacy) update failed", details or f"child exited with status {status}")


def write(plans: list[rules.Plan]) -> None:
    _iptc()           # import once here; the children inherit the module, not loaded extensions
    for family in (4, 6):
        fam_plans = [p for p in plans if p.family == family]
        if fam_plans:
            _in_child(_write_family, family, fam_plans)


def delete(family: int, owned: dict[str, dict]) -> None:
    _iptc()
    _in_child(_delete_family, family, owned)


def _write_family(family: int, fam_plans: list[rules.Plan]) -> None:
    iptc = _iptc()
    tables: dict = {}
    changed: set[str] = set()

    def table(name: str):
        if name not in tables:
            tables[name] = _table(iptc, family, name)
        return tables[name]

    def apply(p: rules.Plan) -> None:
        for name, chain in p.chains:
            if not table(name).is_chain(chain):
                table(name).create_chain(chain)
                changed.add(name)
        for r in p.rules:
            _add_rule(iptc, family, table(r.table), r)
            changed.add(r.table)

    try:
        for p in fam_plans:
            if p.shared is not None:
                marker_table, marker_chain = rules.marker(p.shared)
                if not table(marker_table).is_chain(marker_chain):
                    apply(p.shared)
            apply(p)
        # nat before filter: the shared part's marker chain lives in filter, so it appears last
        for name in sorted(changed, key=lambda n: n == "filter"):
            tables[name].commit()
    except (iptc.IPTCError, iptc.XTablesError) as e:
        raise HostNetError(IO, "iptables (legacy) update failed", str(e)) from None


def _add_rule(iptc, family: int, table, r: rules.Rule) -> None:
    chain = iptc.Chain(table, r.chain)
    rule = build_rule(iptc, family, r.args)
    if r.first:
        chain.insert_rule(rule)
    else:
        chain.append_rule(rule)


def _delete_rule(iptc, family: int, table, save_line: str) -> None:
    """Delete the rule a save line ("-A CHAIN ...") shows; its comment may hold quoted spaces."""
    words = shlex.split(save_line)
    iptc.Chain(table, words[1]).delete_rule(build_rule(iptc, family, words[2:]))


def _delete_family(family: int, owned: dict[str, dict]) -> None:
    iptc = _iptc()
    try:
        for name, part in owned.items():
            t = _table(iptc, family, name)
            for line in part["rules"]:
                _delete_rule(iptc, family, t, line)
            for chain in part["chains"]:
                if t.is_chain(chain):
                    c = iptc.Chain(t, chain)
                    c.flush()
                    c.delete()
            t.commit()
    except (iptc.IPTCError, iptc.XTablesError) as e:
        raise HostNetError(IO, "iptables (legacy) update failed", str(e)) from None


def _replace_family(family: int, owned: dict[str, dict], plans: list[rules.Plan]) -> None:
    """Backend.replace on libiptc: every change to a table goes into one handle, which its
    commit swaps into the kernel whole, so a table changes in one step here too."""
    iptc = _iptc()
    tables: dict = {}

    def table(name: str):
        if name not in tables:
            tables[name] = _table(iptc, family, name)
        return tables[name]

    try:
        for p in plans:
            for name, chain in p.chains:
                if table(name).is_chain(chain):
                    table(name).flush_entries(chain)
                else:
                    table(name).create_chain(chain)
        for name, part in owned.items():
            for line in part["rules"]:
                _delete_rule(iptc, family, table(name), line)
        for p in plans:
            for r in p.rules:
                _add_rule(iptc, family, table(r.table), r)
        for name, part in owned.items():
            for chain in sorted(part["chains"]):
                if table(name).is_chain(chain):
                    table(name).flush_entries(chain)
            for chain in sorted(part["chains"]):
                if table(name).is_chain(chain):
                    table(name).delete_chain(chain)
        for t in tables.values():
            t.commit()
    except (iptc.IPTCError, iptc.XTablesError) as e:
        raise HostNetError(IO, "iptables (legacy) update failed", str(e)) from None
