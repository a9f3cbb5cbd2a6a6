"""Importing ctypes bindings with find_library answered from the library directories."""

import sys

from pyruntime.linux import libraries


def test_versioned_sonames_come_from_the_first_directory_that_has_them(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    for d, names in ((first, ["libfoo.so.2", "libfoo.so.2.5.4", "libbar.so"]),
                     (second, ["libfoo.so.1", "libbaz.so.7", "notalib.so.1"])):
        for n in names:
            (d / n).write_text("")
    found = libraries.versioned_sonames([str(first), str(tmp_path / "missing"), str(second)])
    assert found == {"foo": "libfoo.so.2", "baz": "libbaz.so.7"}


def test_a_binding_imports_with_the_stand_in_and_ctypes_util_is_left_as_it_was(tmp_path, monkeypatch):
    (tmp_path / "libdemo.so.3").write_text("")
    module = tmp_path / "demo_binding.py"
    module.write_text("import ctypes.util\nLIB = ctypes.util.find_library('demo')\n"
                      "C = ctypes.util.find_library('c')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    had_util = "ctypes.util" in sys.modules
    try:
        demo = libraries.import_with_libraries_from("demo_binding", [str(tmp_path)])
        assert demo.LIB == "libdemo.so.3" and demo.C is None     # only what the directories hold
        assert ("ctypes.util" in sys.modules) == had_util
        assert libraries.import_with_libraries_from("demo_binding", []) is demo
    finally:
        sys.modules.pop("demo_binding", None)


def test_a_binding_that_fails_with_the_stand_in_is_imported_the_usual_way(tmp_path, monkeypatch):
    module = tmp_path / "picky_binding.py"
    module.write_text("import ctypes.util\nif ctypes.util.find_library('c') is None:\n"
                      "    raise OSError('libc not found')\nFOUND = ctypes.util.find_library('c')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        picky = libraries.import_with_libraries_from("picky_binding", [str(tmp_path)])
        assert picky.FOUND and "libc" in picky.FOUND                # the real find_library's answer
    finally:
        sys.modules.pop("picky_binding", None)


def test_pyseccomp_opens_the_system_libseccomp():
    from pyruntime.init import seccomp

    lib = seccomp.binding()
    assert "libseccomp.so" in lib._libseccomp._name


def test_libseccomp_version_is_the_loaded_librarys():
    import os

    from pyruntime.linux import libraries

    dirs = libraries.system_library_dirs()
    soname = libraries.versioned_sonames(dirs)["seccomp"]
    real = next(os.path.realpath(os.path.join(d, soname)) for d in dirs
                if os.path.exists(os.path.join(d, soname)))
    # the file behind libseccomp.so.2 is libseccomp.so.2.5.4: its name says the version
    assert real.endswith(".so." + libraries.seccomp_library_version())
    assert libraries.seccomp_library_version(["/nonexistent"]) is None
