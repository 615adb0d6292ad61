"""Why the OS sandbox cannot start, named when the cause is pad's setup (its staging folder)."""

import os
import shutil

import pytest

from conftest import pad_process
from pad_data.sandbox.isolation import unreachable_by_sandbox_user


def test_the_first_folder_the_sandbox_user_cannot_enter_is_named(tmp_path):
    private = tmp_path / "private"
    (private / "t").mkdir(parents=True)
    os.chmod(private, 0o700)
    above = {None, *map(str, private.parents)}  # pytest's own folder may be private too: that one comes first
    assert unreachable_by_sandbox_user(str(private / "t")) in above | {str(private)}
    os.chmod(private, 0o711)
    assert unreachable_by_sandbox_user(str(private / "t")) in above
    assert unreachable_by_sandbox_user("/usr/bin") is None
    if unreachable_by_sandbox_user(str(tmp_path)) is None:
        os.chmod(private, 0o700)
        assert unreachable_by_sandbox_user(str(private / "t")) == str(private)


@pytest.mark.e2e
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("bwrap"), reason="the staging folder is used as root only")
def test_pad_execute_as_root_with_tmpdir_in_a_private_folder_names_the_cause_and_the_fix(tmp_path):
    private = tmp_path / "x"
    (private / "t").mkdir(parents=True)
    os.chmod(private, 0o700)
    res = pad_process("--db", tmp_path / "pad.duckdb", "execute", env={"TMPDIR": str(private / "t")})
    assert res.returncode == 1
    assert "bubblewrap is not available" not in res.stderr
    assert "cannot enter" in res.stderr and "TMPDIR" in res.stderr and "nobody" in res.stderr
    assert not (tmp_path / "pad.duckdb").exists()  # nothing was started
