"""The networking packages by role: each imports only from the layers below it, and a host
helper's failure reaches the CNI caller with the protocol's code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pyruntime
from pyruntime.cni import errors as cnierr
from pyruntime.hostnet import errors as hosterr
from pyruntime.plugins.bridge.main import from_host_error

PACKAGE = Path(pyruntime.__file__).parent

# What each role may import from the project (itself always): host helpers know no CNI, the
# protocol knows no plugin, the plugin knows no hook.
ALLOWED = {
    "hostnet": ("pyruntime.hostnet", "pyruntime.record", "pyruntime.linux"),
    "cni": ("pyruntime.cni", "pyruntime.record", "pyruntime.jsondoc", "pyruntime.errors", "pyruntime.linux"),
    "plugins": ("pyruntime.plugins", "pyruntime.cni", "pyruntime.hostnet", "pyruntime.record",
                "pyruntime.jsondoc", "pyruntime.errors", "pyruntime.linux"),
}


def project_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pyruntime"):
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("pyruntime")}
    return names


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("role", sorted(ALLOWED))
def test_a_role_imports_only_from_below(role):
    modules = sorted((PACKAGE / role).rglob("*.py"))
    assert modules
    wrong = {f"{m.relative_to(PACKAGE)}: {name}" for m in modules for name in project_imports(m)
             # `from pyruntime import linux` names the package, then the module
             if name != "pyruntime" and not within(name, ALLOWED[role])}
    assert not wrong


def test_every_host_error_kind_has_its_cni_code():
    want = {hosterr.CONFIG: cnierr.INVALID_CONFIG, hosterr.ENVIRONMENT: cnierr.INVALID_ENV,
            hosterr.IO: cnierr.IO_FAILURE, hosterr.PORT_TAKEN: cnierr.PORT_CONFLICT,
            hosterr.EXHAUSTED: cnierr.NO_ADDRESSES, hosterr.BUSY: cnierr.TRY_AGAIN_LATER,
            hosterr.EXISTS: cnierr.INTERNAL}
    assert set(want) == set(hosterr.KINDS)
    for kind, code in want.items():
        err = from_host_error(hosterr.HostNetError(kind, "cannot open IPAM data directory", "/x: denied"))
        assert (err.code, err.msg, err.details) == (code, "cannot open IPAM data directory", "/x: denied")
        assert str(err) == "cannot open IPAM data directory: /x: denied"


def test_one_error_class_on_both_sides_of_the_protocol():
    from pyruntime.cni import runtime
    from pyruntime.errors import RuntimeUserError

    with pytest.raises(cnierr.CniError) as caught:
        runtime.parse_conflist({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "../x"}]})
    assert isinstance(caught.value, RuntimeUserError) and caught.value.code == cnierr.INVALID_CONFIG
    assert cnierr.CniError(cnierr.IO_FAILURE, "m", "d").to_json("1.0.0") == {
        "cniVersion": "1.0.0", "code": 5, "msg": "m", "details": "d"}
