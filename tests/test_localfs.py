"""Private directories and files: 0700/0600 whatever the umask, never through a link,
never in a directory someone else controls; failures name the path and the cause."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubectl_runai_dr.localfs import LocalFileError, open_private_dir, write_private_file

OTHER_UID = 54321


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_created_directories_and_files_are_private_under_umask_000(
        tmp_path: Path, umask_000: None) -> None:
    path = write_private_file(tmp_path / "new" / "deeper" / "values.yaml", b"secret: 1\n")
    assert path.read_bytes() == b"secret: 1\n"
    assert _mode(path) == 0o600
    assert _mode(tmp_path / "new") == 0o700 and _mode(tmp_path / "new" / "deeper") == 0o700
    with open_private_dir(tmp_path / "new") as d:
        with d.create("f") as fh:
            assert _mode(tmp_path / "new" / "f") == 0o600  # from the first byte
            fh.write(b"x")
        name, sub = d.make_temp_dir(".x.", ".partial")
        sub.close()
        assert _mode(tmp_path / "new" / name) == 0o700
        assert list((tmp_path / "new").glob("*.tmp")) == []


def test_a_link_is_replaced_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    d = tmp_path / "values"
    d.mkdir(mode=0o700)
    (d / "runai-backend-values.yaml").symlink_to(victim)
    (d / "stale.yaml").write_text("old")
    write_private_file(d / "runai-backend-values.yaml", b"new")
    write_private_file(d / "stale.yaml", b"fresh")
    assert victim.read_text() == "precious"
    assert not (d / "runai-backend-values.yaml").is_symlink()
    assert (d / "runai-backend-values.yaml").read_text() == "new"
    assert (d / "stale.yaml").read_text() == "fresh"
    with open_private_dir(d) as pd, pytest.raises(LocalFileError, match="File exists"):
        pd.create("stale.yaml")  # O_EXCL
    (d / "dangling").symlink_to(tmp_path / "nowhere")
    with open_private_dir(d) as pd, pytest.raises(LocalFileError):
        pd.create("dangling")
    assert not (tmp_path / "nowhere").exists()


def test_a_directory_of_another_user_or_writable_by_others_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, OTHER_UID, OTHER_UID)
    with pytest.raises(LocalFileError, match=rf"belongs to another user \(uid {OTHER_UID}\)"):
        write_private_file(theirs / "v.yaml", b"x")
    assert list(theirs.iterdir()) == []

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with pytest.raises(LocalFileError, match=r"writable by its group and others \(mode 1777\)"):
        write_private_file(shared / "v.yaml", b"x")
    group = tmp_path / "group"
    group.mkdir()
    group.chmod(0o770)
    with pytest.raises(LocalFileError, match="writable by its group") as exc:
        open_private_dir(group)
    assert exc.value.hint and "chmod go-w" in exc.value.hint
    # a new directory under a shared one is fine: it is created 0700
    assert _mode(write_private_file(shared / "mine" / "v.yaml", b"x").parent) == 0o700


def test_a_link_to_a_directory_is_followed_only_when_it_is_ours(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "ours").symlink_to(real)
    write_private_file(tmp_path / "ours" / "v.yaml", b"x")
    assert (real / "v.yaml").read_bytes() == b"x"
    (tmp_path / "planted").symlink_to(real)
    os.lchown(tmp_path / "planted", OTHER_UID, OTHER_UID)
    with pytest.raises(LocalFileError, match="symbolic link of another user"):
        write_private_file(tmp_path / "planted" / "w.yaml", b"x")
    with pytest.raises(LocalFileError, match="symbolic link of another user"):
        write_private_file(tmp_path / "planted" / "new" / "w.yaml", b"x")
    assert list(real.iterdir()) == [real / "v.yaml"]


def test_a_missing_directory_is_not_created_unless_asked(tmp_path: Path) -> None:
    with pytest.raises(LocalFileError, match="does not exist"):
        open_private_dir(tmp_path / "absent")
    assert not (tmp_path / "absent").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(LocalFileError, match=r"Not a directory"):
        open_private_dir(tmp_path / "file" / "sub", create=True)


@pytest.mark.parametrize("code,cause,hint", [
    (errno.ENOSPC, "No space left on device", "free space"),
    (errno.EROFS, "Read-only file system", "read-only"),
    (errno.EACCES, "Permission denied", "permissions"),
])
def test_failures_name_the_path_and_the_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              code: int, cause: str, hint: str) -> None:
    def fail(*args: object, **kwargs: object) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "write", fail)  # the os module localfs writes with
    with pytest.raises(LocalFileError) as exc:
        write_private_file(tmp_path / "v.yaml", b"x")
    assert exc.value.message == f"cannot write {tmp_path / 'v.yaml'}: {cause}"
    assert exc.value.hint and hint in exc.value.hint
    assert exc.value.exit_code == 1
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone too
