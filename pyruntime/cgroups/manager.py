"""The cgroup manager interface: the operations every driver (v1, hybrid, v2) provides.

A manager owns one cgroup path (the same in every hierarchy). Like libcrun's table of cgroup
operations, the interface is small and the same for each layout:

    create(resources)        make the cgroup everywhere, resources applied (undone on failure)
    undo_create()            remove what create() made, nothing the caller had made before
    apply(resources)         write resources to the existing cgroup
    update(stored, changes)  `runc update`: merge, apply, return the new set for state.json
    add_process(pid, subs)   move a process in (or into sub-cgroups: exec --cgroup)
    freeze() / thaw()        pause / resume; is_frozen(), stops_processes()
    pids(), stats(), oom_count()
    destroy()                remove the cgroup from every hierarchy
    to_dict()                what state.json keeps (the package's saved_manager() reads it back)

create, undo_create, apply, update and destroy are written here once over the driver steps
(plan, check, make, execute). Which driver serves a host or a saved state is decided in the
package (`open_manager`, `saved_manager`), so this module never imports a driver. Reading state
(pids, is_frozen, destroy) is plain file access so that `state`, `kill` and `delete` stay cheap;
applying resources imports the heavier planning code only when called.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod

from pyruntime.errors import RuntimeUserError

from .files import remove_cgroup_dir, remove_made_dirs

# How long freeze() waits for every task to reach the frozen state.
FREEZE_TIMEOUT = 5.0


class CgroupManager(ABC):
    """The operations of a cgroup driver; see v1.V1Manager and v2.V2Manager."""

    mode = ""
    path = ""
    made: list[str] = []    # directories the last create() made

    # -- lifecycle ---------------------------------------------------------------------
    def create(self, resources: dict | None = None, linux_devices=None) -> None:
        """Make the cgroup in every hierarchy and apply `resources` (OCI linux.resources).

        Everything is validated before the first mkdir. On any failure the directories made
        here are removed again and a RuntimeUserError naming the setting is raised.
        `linux_devices` (config.json linux.devices) is accepted and grants nothing: as with
        runc and crun, a node the runtime creates is usable only where
        linux.resources.devices allows it.
        """
        plan = self._plan(resources, with_devices=True)
        self._check_available(plan)
        made: list[str] = []
        try:
            self._make(made, plan)
            self._execute(plan)
        except BaseException:
            remove_made_dirs(made)
            raise
        self.made = made

    def undo_create(self) -> None:
        """Remove what create() made of this cgroup, in each hierarchy where it made it, and
        nothing else: a cgroup the caller had made before (its own, a pod's) stays. Parents
        create() made stay too, as other containers may be below them by now."""
        own = set(self.directories())
        failed = []
        for directory in reversed(self.made):
            if directory in own:
                try:
                    remove_cgroup_dir(directory)
                except RuntimeUserError as e:
                    failed.append(e.message)
        self.made = []
        if failed:
            raise RuntimeUserError("; ".join(failed))

    def apply(self, resources: dict) -> None:
        """Apply resources to the existing cgroup (devices only if the dict names them)."""
        plan = self._plan(resources, with_devices="devices" in (resources or {}))
        self._check_available(plan)
        self._execute(plan)

    def update(self, stored: dict | None, changes: dict) -> dict:
        """`runc update`: merge `changes` into the resources the container runs with, apply
        the merged set and return it for state.json. Device rules are applied only when the
        changes name them: the new list replaces the old one, and on v1 the cgroup goes from
        the old rules to the new ones without ever allowing more than either."""
        from .resources import merge

        merged = merge(stored, changes)
        applied = merged if "devices" in changes else {k: v for k, v in merged.items() if k != "devices"}
        self.apply(applied)
        return merged

    def destroy(self) -> None:
        """Remove the cgroup from every hierarchy. Each is tried; one error names every
        directory that could not be removed."""
        failed = []
        for directory in self.directories():
            try:
                remove_cgroup_dir(directory)
            except RuntimeUserError as e:
                failed.append(e.message)
        if failed:
            raise RuntimeUserError("; ".join(failed))

    # -- what each driver provides -----------------------------------------------------
    @abstractmethod
    def directories(self) -> list[str]:
        """Every directory of this cgroup, one per hierarchy."""

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.directories())

    # the steps of create() and apply()
    @abstractmethod
    def _plan(self, resources, with_devices):
        """What to write for `resources`, built before anything is touched."""

    @abstractmethod
    def _check_available(self, plan) -> None:
        """Refuse (NotSupported) a plan that needs a controller this host lacks."""

    @abstractmethod
    def _make(self, made: list[str], plan) -> None:
        """Make the directories (recorded in `made`) and enable what the plan needs."""

    @abstractmethod
    def _execute(self, plan) -> None:
        """Write the plan to the cgroup files."""

    # processes, freezing, reading
    @abstractmethod
    def add_process(self, pid: int, subs: dict[str, str] | None = None) -> None:
        """Move `pid` into the cgroup, or with `subs` (subcgroups.parse) into sub-cgroups."""

    @abstractmethod
    def pids(self) -> list[int]:
        """The processes in the cgroup and its descendants."""

    @abstractmethod
    def freeze(self) -> None:
        """Freeze every task, waiting up to FREEZE_TIMEOUT for them to stop."""

    @abstractmethod
    def thaw(self) -> None:
        """Let the tasks run again."""

    @abstractmethod
    def is_frozen(self) -> bool:
        """The cgroup itself was frozen (by freeze())."""

    @abstractmethod
    def stops_processes(self) -> bool:
        """A process put in this cgroup would be frozen (by it or by an ancestor)."""

    @abstractmethod
    def stats(self) -> dict:
        """The `events --stats` data (runc's shape)."""

    @abstractmethod
    def oom_count(self) -> int:
        """The kernel's count of OOM kills in the cgroup."""

    @abstractmethod
    def to_dict(self) -> dict:
        """JSON-safe record for state.json, enough to rebuild the manager without scanning the host."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.mode} {self.path}>"
