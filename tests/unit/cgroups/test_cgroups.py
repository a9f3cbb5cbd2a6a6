"""The cgroups package: its factories, the features object, and the direction of its imports.

The layers below are the design: a module may import (at the top or inside a function) only
modules of lower layers. The static check reads every import statement; the dynamic one
imports each module alone in a fresh interpreter and looks at what got loaded.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pyruntime import cgroups
from pyruntime.cgroups import features, open_manager, saved_is_frozen, saved_manager
from tests.support import repo_env

PACKAGE = Path(cgroups.__file__).parent

LAYERS = [
    # helpers that import nothing else of the package
    {"files", "paths", "convert", "devices", "subcgroups", "rt", "ebpf", "warmup"},
    # what the host offers, resource planning, statistics, cgroupspy's controllers
    {"mounts", "resources", "stats", "v1_controllers"},
    # the manager interface
    {"manager"},
    # the drivers; hybrid (v1) drives its unified part with the v2 driver
    {"v2"},
    {"v1"},
    # what the runtime's commands do with a container's cgroup
    {"update_flags", "events", "processes"},
    # the factories: which driver for this host or this saved state
    {"__init__"},
]
RANK = {name: rank for rank, layer in enumerate(LAYERS) for name in layer}


def _imported_modules(name: str) -> set[str]:
    """The package modules `name` imports anywhere in its source ("__init__" for the package)."""
    tree = ast.parse((PACKAGE / f"{name}.py").read_text())
    found = set()

    def submodule_or_package(candidate: str) -> str:
        return candidate if (PACKAGE / f"{candidate}.py").exists() else "__init__"

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found.update(submodule_or_package(a.name) for a in node.names)
            elif node.module == "pyruntime.cgroups":
                found.update(submodule_or_package(a.name) for a in node.names)
            elif node.module and node.module.startswith("pyruntime.cgroups."):
                found.add(node.module.split(".")[2])
            elif node.module == "pyruntime" and any(a.name == "cgroups" for a in node.names):
                found.add("__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "pyruntime.cgroups":
                    found.add("__init__")
                elif alias.name.startswith("pyruntime.cgroups."):
                    found.add(alias.name.split(".")[2])
    found.discard(name)
    return found


def test_every_module_has_a_layer():
    on_disk = {p.stem for p in PACKAGE.glob("*.py")}
    assert on_disk == set(RANK), "place new cgroups modules in LAYERS"


def test_imports_only_go_down_the_layers():
    upward = [(name, dep) for name in RANK for dep in sorted(_imported_modules(name))
              if RANK[dep] >= RANK[name]]
    assert upward == [], "imports that point up (or sideways, which allows a cycle)"


def test_the_static_walk_sees_lazy_and_package_imports():
    # function-level imports count (they make a cycle just the same), and so do names
    # taken from the package itself
    assert {"v2", "resources", "subcgroups", "v1_controllers"} <= _imported_modules("v1")
    assert {"v1", "v2", "mounts", "files", "paths"} <= _imported_modules("__init__")


def _loaded_alone(module: str) -> set[str]:
    """The package modules loaded by importing `module` alone in a fresh interpreter."""
    code = ("import importlib, json, sys\n"
            f"importlib.import_module({module!r})\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[:2] == ['pyruntime', 'cgroups'])))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=repo_env(), check=True, timeout=60)
    return {"__init__" if m == "pyruntime.cgroups" else m.split(".")[2] for m in json.loads(out.stdout)}


def test_importing_the_package_loads_only_helpers():
    assert _loaded_alone("pyruntime.cgroups") <= {"__init__"} | LAYERS[0]


@pytest.mark.parametrize("name", sorted(set(RANK) - {"__init__"}))
def test_each_module_alone_loads_only_lower_layers(name):
    baseline = _loaded_alone("pyruntime.cgroups")
    extra = _loaded_alone(f"pyruntime.cgroups.{name}") - baseline - {name}
    assert {m for m in extra if RANK[m] >= RANK[name]} == set()


def test_open_manager_picks_the_driver_of_the_layout(tmp_path):
    v1 = open_manager("/pyruntime-test/c", root=str(tmp_path))
    assert (type(v1).__name__, v1.mode, v1.unified_mount) == ("V1Manager", "v1", None)
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    hybrid = open_manager("/pyruntime-test/c", root=str(tmp_path))
    assert (hybrid.mode, hybrid.unified_mount) == ("hybrid", f"{tmp_path}/unified")
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    v2 = open_manager("/pyruntime-test/c", root=str(tmp_path))
    assert (type(v2).__name__, v2.dir) == ("V2Manager", f"{tmp_path}/pyruntime-test/c")
    with pytest.raises(ValueError, match="unknown cgroup mode"):
        open_manager("/pyruntime-test/c", mode="systemd", root=str(tmp_path))


def test_saved_manager_rebuilds_what_to_dict_saved():
    hierarchies = {"memory": "/m/memory", "cpu": "/m/cpu,cpuacct"}
    hybrid = saved_manager({"mode": "hybrid", "path": "/p/c", "root": "/m", "hierarchies": hierarchies,
                            "unified": "/m/unified"})
    assert hybrid.directories() == ["/m/memory/p/c", "/m/cpu,cpuacct/p/c", "/m/unified/p/c"]
    assert saved_manager(hybrid.to_dict()).to_dict() == hybrid.to_dict()
    v2 = saved_manager({"mode": "v2", "path": "/p/c", "root": "/u"})
    assert v2.directories() == ["/u/p/c"] and saved_manager(v2.to_dict()).to_dict() == v2.to_dict()
    with pytest.raises(ValueError, match="unknown cgroup manager mode"):
        saved_manager({"mode": "cgroupfs", "path": "/p/c"})


@pytest.mark.parametrize("mode", ["v1", "hybrid", "v2"])
def test_saved_is_frozen_answers_as_the_driver(tmp_path, mode):
    """The driver-free check reads the file the driver's is_frozen() reads, the same way:
    frozen, thawed, a freezing v1 cgroup, no file, no freezer hierarchy."""
    if mode == "v2":
        data = {"mode": "v2", "path": "/p/c", "root": str(tmp_path)}
        state_file, states = tmp_path / "p" / "c" / "cgroup.freeze", ["1\n", "0\n"]
    else:
        data = {"mode": mode, "path": "/p/c", "root": str(tmp_path),
                "hierarchies": {"freezer": str(tmp_path / "freezer"), "memory": str(tmp_path / "memory")},
                "unified": str(tmp_path / "unified") if mode == "hybrid" else None}
        state_file, states = tmp_path / "freezer" / "p" / "c" / "freezer.state", ["FROZEN\n", "THAWED\n", "FREEZING\n"]
    assert saved_is_frozen(data) is saved_manager(data).is_frozen() is False   # no file yet
    state_file.parent.mkdir(parents=True)
    for text in states:
        state_file.write_text(text)
        assert saved_is_frozen(data) is saved_manager(data).is_frozen() is (text in ("1\n", "FROZEN\n"))
    if mode != "v2":
        del data["hierarchies"]["freezer"]
        assert saved_is_frozen(data) is saved_manager(data).is_frozen() is False
    with pytest.raises(ValueError, match="unknown cgroup manager mode"):
        saved_is_frozen({"mode": "cgroupfs", "path": "/p/c"})


def test_status_reads_no_cgroup_driver(tmp_path):
    """`state`, `start` and `kill` derive the status on every call: no driver gets loaded."""
    code = f"""
import sys
from pyruntime.cgroups import saved_is_frozen
assert saved_is_frozen({{"mode": "hybrid", "path": "/c", "root": "/x",
                        "hierarchies": {{"freezer": {str(tmp_path)!r}}}, "unified": None}}) is False
print(sorted(n for n in sys.modules if n.startswith("pyruntime.cgroups")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=repo_env(), check=True)
    assert out.stdout.strip() == "['pyruntime.cgroups', 'pyruntime.cgroups.paths']"


def test_features_document():
    f = features()
    assert f["v1"] is True and f["v2"] is True and f["systemd"] is False and f["systemdUser"] is False


def test_hot_paths_stay_light(tmp_path):
    """state/kill/delete only read files: the package, the file helpers, the interface and the
    driver get imported; no cgroupspy, no planning code, no mountinfo parsing."""
    leaf = tmp_path / "memory" / "pyruntime-test" / "c"
    leaf.mkdir(parents=True)
    code = f"""
import sys
from pyruntime.cgroups import saved_manager
m = saved_manager({{"mode": "hybrid", "path": "/pyruntime-test/c", "root": "/x",
                   "hierarchies": {{"memory": {str(tmp_path / "memory")!r}}},
                   "unified": {str(tmp_path / "unified")!r}}})
assert m.pids() == [] and m.is_frozen() is False
m.destroy()
heavy = [n for n in ("cgroupspy", "logging", "json") if n in sys.modules]
print(heavy, sorted(n for n in sys.modules if n.startswith("pyruntime.cgroups")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=repo_env(), check=True)
    assert out.stdout.strip() == ("[] ['pyruntime.cgroups', 'pyruntime.cgroups.files', 'pyruntime.cgroups.manager', "
                                  "'pyruntime.cgroups.paths', 'pyruntime.cgroups.v1']")
    assert not leaf.exists()
