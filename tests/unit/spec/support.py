"""What the config checks' tests share: a valid base config, podman's, a way to break one field,
and a validator cache of their own (an autouse fixture: import it where it is wanted)."""

from __future__ import annotations

import copy
import json
import os
import re

import pytest

from pyruntime.errors import ConfigError
from pyruntime.spec import default_spec, fastcheck, validate_config

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
DELETE = object()
EXECUTABLE = "/usr/bin/env"
# the smallest config the compiled validators take
VALID = {"ociVersion": "1.2.0", "root": {"path": "rootfs"}, "hostname": "a-long-hostname"}


@pytest.fixture(autouse=True, scope="module")
def isolated_cache(tmp_path_factory):
    """Compiled validators go to a temporary cache, not the host's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYRUNTIME_CACHE_DIR", str(tmp_path_factory.mktemp("validator-cache")))
        fastcheck.forget()
        yield
        fastcheck.forget()


def base_config() -> dict:
    """The default spec plus one of every structured section, all valid."""
    config = default_spec(cgroup_ns=False)
    config["hooks"] = {
        "prestart": [{"path": EXECUTABLE, "args": ["env"]}],
        "createRuntime": [{"path": EXECUTABLE}],
        "poststop": [{"path": EXECUTABLE, "timeout": 5}],
    }
    config["annotations"] = {"com.example.key": "value"}
    linux = config["linux"]
    linux["resources"].update({
        "memory": {"limit": 536870912, "swap": -1, "swappiness": 10},
        "cpu": {"shares": 1024, "quota": 100000, "period": 100000, "cpus": "0-1"},
        "pids": {"limit": 100},
        "blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 200}]},
    })
    linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}],
    }
    linux["cgroupsPath"] = "/pyruntime/test"
    return config


def podman_config() -> dict:
    with open(os.path.join(FIXTURES, "podman-config.json")) as f:
        return json.load(f)


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _steps(path: str) -> list[str | int]:
    return [int(index) if index else key for key, index in _STEP.findall(path)]


def mutate(config: dict, path: str, value) -> dict:
    """A copy of `config` with the field at a dotted/[index] path set, appended or deleted."""
    config = copy.deepcopy(config)
    steps = _steps(path)
    node = config
    for step in steps[:-1]:
        if isinstance(step, str) and step not in node:
            node[step] = {}
        node = node[step]
    last = steps[-1]
    if value is DELETE:
        del node[last]
    elif isinstance(last, int) and last == len(node):
        node.append(value)
    else:
        node[last] = value
    return config


def problems_of(config) -> list[tuple[str, str]]:
    try:
        validate_config(config)
    except ConfigError as e:
        return e.problems
    return []
