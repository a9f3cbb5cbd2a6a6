"""What --version prints (pyruntime.buildinfo): the commit of a checkout or of a build, the layout
runc uses."""

# -- --version ---------------------------------------------------------------------------------
def _fake_checkout(tmp_path, head, **files):
    git = tmp_path / "checkout" / ".git"
    git.mkdir(parents=True)
    (git / "HEAD").write_text(head + "\n")
    for name, text in files.items():
        path = git / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "checkout"


SHA_A, SHA_B = "a" * 40, "0123456789abcdef0123456789abcdef01234567"


def test_git_head_follows_a_branch_to_its_loose_or_packed_commit(tmp_path):
    from pyruntime import buildinfo

    loose = _fake_checkout(tmp_path / "1", "ref: refs/heads/main", refs__heads__main=SHA_A + "\n")
    assert buildinfo.git_head(str(loose)) == SHA_A
    packed = _fake_checkout(tmp_path / "2", "ref: refs/heads/main",
                            **{"packed-refs": f"# pack-refs with: peeled\n{SHA_B} refs/heads/main\n"})
    assert buildinfo.git_head(str(packed)) == SHA_B
    detached = _fake_checkout(tmp_path / "3", SHA_B)
    assert buildinfo.git_head(str(detached)) == SHA_B
    assert buildinfo.git_head(str(tmp_path / "nothing")) is None
    broken = _fake_checkout(tmp_path / "4", "ref: refs/heads/gone")
    assert buildinfo.git_head(str(broken)) is None


def test_git_head_of_a_worktree_reads_the_common_refs(tmp_path):
    from pyruntime import buildinfo

    main = _fake_checkout(tmp_path, "ref: refs/heads/main", refs__heads__topic=SHA_B + "\n",
                          worktrees__wt__HEAD="ref: refs/heads/topic\n",
                          worktrees__wt__commondir="../..\n")
    worktree = tmp_path / "wt"
    worktree.mkdir()
    (worktree / ".git").write_text(f"gitdir: {main / '.git' / 'worktrees' / 'wt'}\n")
    assert buildinfo.git_head(str(worktree)) == SHA_B


def test_commit_prefers_the_checkout_then_the_build_record(tmp_path):
    from pyruntime import buildinfo

    checkout = _fake_checkout(tmp_path, SHA_A)
    package = checkout / "pyruntime"
    package.mkdir()
    (package / "COMMIT").write_text(SHA_B + "\n")
    assert buildinfo.commit(str(package)) == SHA_A
    (checkout / ".git" / "HEAD").unlink()
    assert buildinfo.commit(str(package)) == SHA_B
    (package / "COMMIT").write_text("not a commit\n")
    assert buildinfo.commit(str(package)) == "unknown"


def test_a_build_records_the_commit_of_its_sources(tmp_path):
    from pyruntime import buildinfo

    checkout = _fake_checkout(tmp_path, SHA_A)
    built = tmp_path / "build" / "pyruntime"
    assert buildinfo.record(str(built), str(checkout)) == SHA_A
    assert (built / "COMMIT").read_text() == SHA_A + "\n"
    # an sdist (no .git) passes on what it carries
    sdist = tmp_path / "sdist"
    (sdist / "pyruntime").mkdir(parents=True)
    (sdist / "pyruntime" / "COMMIT").write_text(SHA_B + "\n")
    wheel = tmp_path / "wheel" / "pyruntime"
    assert buildinfo.record(str(wheel), str(sdist)) == SHA_B
    assert buildinfo.commit(str(wheel)) == SHA_B
    assert buildinfo.record(str(tmp_path / "x"), str(tmp_path / "plain-copy")) is None


def test_version_text_is_runcs_layout():
    import subprocess
    import sys

    from pyruntime import OCI_VERSION, __version__, buildinfo
    from tests.support import REPO

    lines = buildinfo.version_text().splitlines()
    assert lines[0] == f"pyruntime version {__version__}"
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, check=False,
                          text=True).stdout.strip()
    if head:
        assert lines[1] == f"commit: {head}"
    assert lines[2] == f"spec: {OCI_VERSION}"
    assert lines[3] == f"python: {sys.version.split()[0]}"
    assert lines[4].startswith("libseccomp: ") and len(lines) == 5
