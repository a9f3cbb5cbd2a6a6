"""`python -m build` makes an sdist and, from it, a wheel holding everything pyruntime reads at
run time: every module, and the top-level oci-schemas/ as pyruntime/oci_schemas.

Needs the `build` package (in the test extra) and a package index for the isolated build
environment (setuptools); .ci/smoke goes further and runs containers from an installed wheel.
"""

import configparser
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
SKIP = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", "rootfs", "build", "dist", "*.egg-info",
                              ".pytest_cache", ".hypothesis")


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    pytest.importorskip("build", reason="the `build` package (pip install '.[test]')")
    tmp = tmp_path_factory.mktemp("build")
    source = tmp / "src"                       # a copy: a build writes egg-info into its source
    shutil.copytree(CHECKOUT, source, ignore=SKIP)
    proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(tmp / "dist"), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (sdist,) = (tmp / "dist").glob("pyruntime-*.tar.gz")
    (wheel,) = (tmp / "dist").glob("pyruntime-*.whl")
    yield sdist, wheel
    shutil.rmtree(tmp)


def test_the_wheel_carries_the_schemas_byte_for_byte(dists):
    _, wheel = dists
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        schemas = sorted(p for p in (CHECKOUT / "oci-schemas").iterdir() if p.suffix == ".json")
        assert schemas
        for schema in schemas:
            inside = f"pyruntime/oci_schemas/{schema.name}"
            assert inside in names, f"{inside} is not in the wheel"
            assert z.read(inside) == schema.read_bytes()
        assert not [n for n in names if n.startswith("oci-schemas/")]   # not beside the package


def test_the_wheel_carries_every_module_and_the_four_programs(dists):
    _, wheel = dists
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = configparser.ConfigParser()
        scripts.read_string(z.read(entry_points).decode())
    modules = {p.relative_to(CHECKOUT).as_posix() for p in (CHECKOUT / "pyruntime").rglob("*.py")}
    assert modules - names == set()
    assert dict(scripts["console_scripts"]) == {
        "pyruntime-network-hook": "pyruntime.network.hook:main",
        "pyruntime-bridge": "pyruntime.plugins.bridge.main:main",
        "pyruntime-netd": "pyruntime.network.netd:main",
    }
    # pyruntime itself is a plain script, its first line left for the installer to fill in
    assert "pyruntime-0.1.0.data/scripts/pyruntime" in names
    assert not [n for n in names if n.startswith("pyruntime/scripts/")]   # not as data as well


def test_the_program_imports_no_more_than_the_hot_command_needs(dists, tmp_path):
    """The installed `pyruntime` exists to avoid the `import re` of pip's console-script
    template: run the wheel's own script on the fast path (a `state` of an unknown id) and
    read what it imported."""
    _, wheel = dists
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    script = site / "pyruntime-0.1.0.data" / "scripts" / "pyruntime"
    assert script.read_text().startswith("#!python\n")
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-X", "importtime", str(script), "--root",
                           str(tmp_path / "state"), "state", "nosuch"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1 and "nosuch" in proc.stderr, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:") and "|" in line}
    assert "pyruntime.fastpath" in imported
    assert not imported & {"re", "enum", "click", "json", "typing"}, imported


def test_the_sdist_keeps_the_schemas_where_they_are_edited(dists):
    sdist, _ = dists
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    assert {f"oci-schemas/{p.name}" for p in (CHECKOUT / "oci-schemas").glob("*.json")} <= names
    assert {"pyproject.toml", "README.md", "hooks/pyruntime-network", ".ci/smoke"} <= names
    assert not [n for n in names if "__pycache__" in n or "/rootfs/" in n]


def test_every_package_directory_is_listed_in_pyproject():
    """pyproject.toml lists the packages (the schemas' mapping rules out `find`): a new
    subpackage that is not listed would be missing from every wheel."""
    config = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(CHECKOUT).parts)
               for p in (CHECKOUT / "pyruntime").rglob("*.py") if "__pycache__" not in p.parts}
    listed = set(config["packages"])
    assert on_disk | {"pyruntime.oci_schemas"} == listed
    assert config["package-dir"] == {"pyruntime.oci_schemas": "oci-schemas"}
