"""pyruntime works from every layout an installation gives: a checkout (editable installs), a
wheel's site-packages, a zip; the container stages import the package without site; the
programs find each other beside themselves (see also tests/packaging for real builds)."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import pyruntime
from pyruntime.errors import RuntimeUserError
from pyruntime.init import reexec
from pyruntime.network import admin, locate
from pyruntime.spec import schemas

CHECKOUT = Path(pyruntime.__file__).resolve().parent.parent
BROKEN = {"ociVersion": "1.2.0", "process": {"cwd": "/", "args": ["true"],
                                             "user": {"uid": "root", "gid": 0}},
          "root": {"path": "rootfs"}}


def run_python(code: str, *args, path=(), env=None) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter that sees only `path` and the standard library: -I -S,
    as no site-packages, no .pth file and no checkout on the path may help it."""
    prelude = f"import sys; sys.path[:0] = {list(map(str, path))!r}\n"
    return subprocess.run([sys.executable, "-I", "-S", "-c", prelude + code, *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def copy_package(site: Path, with_schemas: bool) -> Path:
    """A wheel's layout: site/pyruntime with the schemas inside as oci_schemas, no checkout."""
    shutil.copytree(CHECKOUT / "pyruntime", site / "pyruntime",
                    ignore=shutil.ignore_patterns("__pycache__"))
    if with_schemas:
        shutil.copytree(CHECKOUT / "oci-schemas", site / "pyruntime" / "oci_schemas")
    return site


# -- schemas -------------------------------------------------------------------------------
def test_in_a_checkout_the_top_level_schemas_are_used(monkeypatch):
    monkeypatch.delenv("PYRUNTIME_SCHEMA_DIR", raising=False)
    assert schemas.schema_dir() == str(CHECKOUT / "oci-schemas")


VALIDATE = ("import json, sys; from pyruntime.spec import schemas; from pyruntime.spec.validate "
            "import schema_check; print(json.dumps([str(schemas.schema_dir()), "
            "schema_check(json.loads(sys.argv[1]), 'config')]))")


@pytest.fixture
def isolated_env(tmp_path):
    env = {"PYRUNTIME_CACHE_DIR": str(tmp_path / "cache")}
    return env | {"PYRUNTIME_SCHEMA_DIR": ""}


def fastjsonschema_dir() -> str:
    import fastjsonschema

    return os.path.dirname(os.path.dirname(fastjsonschema.__file__))


def test_a_wheel_layout_reads_the_schemas_inside_the_package(tmp_path, isolated_env):
    site = copy_package(tmp_path / "site", with_schemas=True)
    proc = run_python(VALIDATE, json.dumps(BROKEN), path=[site, fastjsonschema_dir()], env=isolated_env)
    assert proc.returncode == 0, proc.stderr
    where, problems = json.loads(proc.stdout)
    assert where == str(site / "pyruntime" / "oci_schemas")
    assert problems == [["process.user.uid", 'expected an integer >= 0, got "root"']]


def test_a_package_in_a_zip_reads_its_schemas_through_importlib_resources(tmp_path, isolated_env):
    site = copy_package(tmp_path / "site", with_schemas=True)
    archive = tmp_path / "pyruntime.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for file in sorted(site.rglob("*")):
            if file.is_file():
                z.write(file, file.relative_to(site).as_posix())
    proc = run_python(VALIDATE, json.dumps(BROKEN), path=[archive, fastjsonschema_dir()], env=isolated_env)
    assert proc.returncode == 0, proc.stderr
    where, problems = json.loads(proc.stdout)
    assert where.startswith(str(archive)) and where.rstrip("/").endswith("pyruntime/oci_schemas")
    assert problems == [["process.user.uid", 'expected an integer >= 0, got "root"']]
    # the cached validator was keyed by the schema files read from the zip
    assert [n for n in os.listdir(tmp_path / "cache") if n.startswith("config-")]


def test_an_installation_without_schemas_says_so_in_one_line(tmp_path, isolated_env):
    site = copy_package(tmp_path / "site", with_schemas=False)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(BROKEN))
    proc = run_python("from pyruntime.fastpath import main; sys.exit(main())", "validate", "-b",
                      str(bundle), path=[site, *sys.path], env=isolated_env)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "the OCI schemas are missing from this installation" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# -- the stage's bootstrap -----------------------------------------------------------------
def test_the_stage_path_starts_with_the_directory_holding_the_package():
    home, *rest = reexec.stage_path()
    assert home == str(CHECKOUT)
    assert rest[:len(sys.path)] == sys.path


# An editable install's import hook, as setuptools makes one: a meta_path finder mapping the
# package to the checkout, while the checkout itself is on no path entry.
EDITABLE_HOOK = """
import importlib.machinery, importlib.util, sys
import os
checkout = sys.argv[1]
# no path entry holds the checkout; with HIDE_OTHERS, none holds any pyruntime at all
sys.path[:] = [p for p in sys.path if p.rstrip("/") != checkout
               and not (HIDE_OTHERS and os.path.isdir(os.path.join(p, "pyruntime")))]
class EditableFinder:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == "pyruntime":
            return importlib.util.spec_from_file_location(
                name, checkout + "/pyruntime/__init__.py",
                submodule_search_locations=[checkout + "/pyruntime"])
        return None
sys.meta_path.append(EditableFinder)
import pyruntime
from pyruntime.init import reexec
argv = [sys.executable, "-I", "-S", "-c", PROBE, "init", "0", "0", *ARGS]
import subprocess
proc = subprocess.run(argv, capture_output=True, text=True)
print(proc.returncode, proc.stdout.strip() or proc.stderr.strip().splitlines()[-1])
"""


def stage_probe(args_expression: str, probe: str, hide_others: bool = True) -> str:
    code = (f"PROBE = {probe!r}\nARGS_EXPR = {args_expression!r}\nHIDE_OTHERS = {hide_others!r}\n"
            + EDITABLE_HOOK.replace("*ARGS", "*eval(ARGS_EXPR)"))
    # the parent runs with site here: it is the runtime, started from its console script
    proc = subprocess.run([sys.executable, "-c", code, str(CHECKOUT)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.parametrize("hide_others", [True, False])
def test_the_stage_imports_the_package_an_editable_import_hook_gave_the_runtime(hide_others):
    """Also when another pyruntime is on the path (another install's): the runtime's own."""
    probe = reexec.IMPORT_PYRUNTIME + "import pyruntime.init.container; print(pyruntime.__file__)"
    assert stage_probe("reexec.stage_path()", probe, hide_others) == f"0 {CHECKOUT}/pyruntime/__init__.py"


def test_the_runtime_s_sys_path_alone_would_not_hold_an_editable_package():
    """The control for the test above: what the stage had before does not find it."""
    old_probe = "import sys; sys.path[:] = sys.argv[4:]; import pyruntime"
    assert stage_probe("sys.path", old_probe) == "1 ModuleNotFoundError: No module named 'pyruntime'"


# -- programs beside each other ------------------------------------------------------------
def make_install(tmp_path: Path) -> tuple[Path, Path]:
    """A venv's bin with the three console scripts, and a link dir such as /usr/local/bin."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("pyruntime", locate.HOOK, locate.PLUGIN, "python3"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    links = tmp_path / "local-bin"
    links.mkdir()
    (links / "pyruntime").symlink_to(bin_dir / "pyruntime")
    return bin_dir, links


def test_programs_are_looked_for_beside_the_script_its_link_and_the_interpreter(tmp_path):
    bin_dir, links = make_install(tmp_path)
    dirs = locate.program_dirs(str(links / "pyruntime"), "/usr/bin/python3")
    assert dirs == [str(bin_dir), str(links), "/usr/bin"]
    assert locate.program_dirs("-c", str(bin_dir / "python3")) == [str(bin_dir)]
    assert locate.find_own(locate.HOOK, dirs) == str(bin_dir / locate.HOOK)
    assert locate.find_own("pyruntime-missing", dirs) is None


def test_the_hook_runs_the_plugin_beside_it_after_the_cni_directories(tmp_path, monkeypatch):
    from pyruntime.cni.runtime import DEFAULT_CNI_PATH
    from pyruntime.network import hook

    bin_dir, _ = make_install(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(bin_dir / locate.HOOK), "up"])
    monkeypatch.setattr(sys, "executable", "/usr/bin/python3")
    assert hook.default_cni_path() == [*DEFAULT_CNI_PATH, str(bin_dir)]
    (bin_dir / locate.PLUGIN).unlink()       # no plugin beside it: no directory of ours at all
    assert hook.default_cni_path() == list(DEFAULT_CNI_PATH)


def test_spec_writes_the_hook_beside_the_running_pyruntime(tmp_path, monkeypatch):
    from pyruntime.network.spec import default_hook_path

    bin_dir, links = make_install(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(links / "pyruntime"), "spec"])
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")
    assert default_hook_path() == str(bin_dir / locate.HOOK)


def test_network_install_links_the_plugin_and_writes_the_default_network(tmp_path, monkeypatch):
    from pyruntime.network.config import DEFAULT_CONFLIST, find_network

    bin_dir, links = make_install(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(links / "pyruntime"), "network", "install"])
    cni, netd = tmp_path / "opt-cni-bin", tmp_path / "net.d"
    report = admin.install(str(cni), str(netd))
    assert os.readlink(cni / locate.PLUGIN) == str(bin_dir / locate.PLUGIN)
    assert find_network("pyruntime", [str(netd)]) == DEFAULT_CONFLIST
    assert any(str(bin_dir / locate.HOOK) in line for line in report)
    assert "already there" in admin.install(str(cni), str(netd))[0]      # idempotent

    (cni / locate.PLUGIN).unlink()
    (cni / locate.PLUGIN).symlink_to("/bin/true")                        # somebody else's
    with pytest.raises(RuntimeUserError, match="--force replaces it"):
        admin.install(str(cni), str(netd))
    assert os.readlink(cni / locate.PLUGIN) == "/bin/true"
    admin.install(str(cni), str(netd), force=True)
    assert os.readlink(cni / locate.PLUGIN) == str(bin_dir / locate.PLUGIN)

    edited = json.loads((netd / "pyruntime.conflist").read_text()) | {"note": "mine"}
    (netd / "pyruntime.conflist").write_text(json.dumps(edited))
    admin.install(str(cni), str(netd))
    assert json.loads((netd / "pyruntime.conflist").read_text())["note"] == "mine"   # kept

    report = admin.uninstall(str(cni), str(netd))
    assert not os.path.lexists(cni / locate.PLUGIN)
    assert (netd / "pyruntime.conflist").exists() and "kept" in report[1]
    (netd / "pyruntime.conflist").write_text(admin.default_conflist_text())
    admin.uninstall(str(cni), str(netd))
    assert os.listdir(cni) == [] and os.listdir(netd) == []


def test_network_install_without_a_plugin_beside_it_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["-c"])
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python3"))
    with pytest.raises(RuntimeUserError, match="pyruntime-bridge not found beside this pyruntime"):
        admin.install(str(tmp_path / "cni"), str(tmp_path / "net.d"))
    assert not (tmp_path / "cni").exists()


def test_the_cli_defaults_are_the_runtime_s_own():
    from pyruntime.cli import network_install
    from pyruntime.cni.runtime import DEFAULT_CNI_PATH
    from pyruntime.network.config import DEFAULT_CONFIG_DIRS

    defaults = {p.name: p.default for p in network_install.params}
    assert defaults["cni_bin_dir"] == DEFAULT_CNI_PATH[0]
    assert defaults["config_dir"] == DEFAULT_CONFIG_DIRS[0]
