"""Build hooks beside pyproject.toml (which holds all the metadata): every sdist and wheel built
from a git checkout carries the commit it was built from in pyruntime/COMMIT, which
`pyruntime --version` prints. A wheel built from such an sdist takes the sdist's record."""

import os
import sys

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

SOURCE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SOURCE)

from pyruntime import buildinfo  # a plain module: it imports no dependency


class BuildPyWithCommit(build_py):
    def run(self):
        super().run()
        if not self.dry_run:
            buildinfo.record(os.path.join(self.build_lib, "pyruntime"), SOURCE)


class SdistWithCommit(sdist):
    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        if not self.dry_run:
            buildinfo.record(os.path.join(base_dir, "pyruntime"), SOURCE)


setup(cmdclass={"build_py": BuildPyWithCommit, "sdist": SdistWithCommit})
