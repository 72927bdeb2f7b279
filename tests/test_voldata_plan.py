"""The pure part of --volume-data: counting a tar stream's entries, judging tar's exit, the
records a bundle carries, the claims chosen, the objects made."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kubectl_runai_dr.plan import voldata as p


def _tree(root: Path) -> int:
    (root / "d" / ("long-" + "n" * 200)).mkdir(parents=True)  # a GNU long name ('L')
    (root / "d" / ("long-" + "n" * 200) / "f").write_bytes(os.urandom(3000))
    with open(root / "sparse", "wb") as f:  # many holes: GNU sparse extension blocks
        for i in range(40):
            f.seek(i * 1024 * 1024)
            f.write(b"x")
    os.symlink("d", root / "link")
    (root / "empty").write_bytes(b"")
    os.link(root / "empty", root / "hard")
    (root / os.fsdecode(b"caf\xe9")).write_bytes(b"latin-1 name")
    return sum(1 for _ in root.rglob("*")) + 1  # and "./"


@pytest.mark.parametrize("fmt", ["gnu", "posix", "ustar-like"])
def test_counter_counts_what_gnu_tar_writes(tmp_path: Path, fmt: str) -> None:
    root = tmp_path / "t"
    root.mkdir()
    expected = _tree(root)
    args = {"gnu": ["--format=gnu", "--sparse"], "posix": ["--format=posix", "--sparse"],
            "ustar-like": ["--format=gnu"]}[fmt]
    data = subprocess.run(["tar", "-c", "-f", "-", *args, "-C", str(root), "."],
                          capture_output=True, check=True).stdout
    for step in (1 if len(data) < 1 << 20 else 3, 511, 512, 7919, len(data)):  # any framing
        c = p.TarCounter()
        view = memoryview(data)
        for i in range(0, len(data), step if step > 3 else 1 << 16):
            chunk = view[i:i + (step if step > 3 else 1 << 16)]
            for j in range(0, len(chunk), step):
                c.write(chunk[j:j + step])
            if step <= 3 and i > 1 << 20:
                c.write(view[i + (1 << 16):])  # the rest at once: the small steps cost time
                break
        assert c.entries == expected and c.ended, (fmt, step)


def test_counter_sees_a_cut_stream() -> None:
    c = p.TarCounter()
    c.write(b"\0" * 512)
    assert not c.ended


def test_judge_tar() -> None:
    ok = p.judge_tar(0, "")
    assert ok.ok and not ok.changed
    changed = p.judge_tar(1, "tar: ./wal/00000002: file changed as we read it\n"
                             "tar: ./s: socket ignored\n")
    assert changed.ok and changed.changed == ["./wal/00000002 (file changed as we read it)"]
    bad = p.judge_tar(1, "tar: ./x: file changed as we read it\ntar: ./y: Cannot open: "
                         "Permission denied\n")
    assert not bad.ok and bad.problems == ["tar: ./y: Cannot open: Permission denied"]
    assert not p.judge_tar(2, "").ok and not p.judge_tar(None, "").ok


def _record() -> dict[str, object]:
    return {"namespace": "runai-backend", "claim": {"name": "data-x-0", "size": "1Gi"},
            "file": p.member_path("runai-backend", "data-x-0"), "sha256": "0" * 64,
            "image": "img", "size": 10, "entries": 3}


def test_records_of_validates_what_a_bundle_says() -> None:
    doc = p.records_document([_record()], "2024-01-01T00:00:00Z")
    assert p.records_of(doc)[0]["claim"]["name"] == "data-x-0"
    for bad, why in (({**_record(), "file": "../../etc/passwd"}, "is not where"),
                     ({**_record(), "entries": -1}, "entries"),
                     ({**_record(), "size": True}, "size"),
                     ({**_record(), "image": ""}, "image")):
        with pytest.raises(ValueError, match=why):
            p.records_of(p.records_document([bad], "t"))
    with pytest.raises(ValueError, match="format version"):
        p.records_of({**doc, "formatVersion": 99})


def test_claims_chosen_and_objects_made() -> None:
    present = ["data-runai-backend-postgresql-0", "data-runai-backend-thanos-receive-0",
               "data-runai-backend-redis-queue-master-0", "other"]
    chosen = p.select_claims(present, "runai-backend", [])
    assert [c.name for c in chosen] == ["data-runai-backend-thanos-receive-0",
                                        "data-runai-backend-redis-queue-master-0"]
    named = p.select_claims(present, "runai-backend", ["other", "ns2/x", "other"])
    assert [(c.namespace, c.name, c.role) for c in named] == [
        ("runai-backend", "other", "extra"), ("ns2", "x", "extra")]
    pvc = p.claim_for_restore({**_record(), "claim": {"name": "c", "size": "5Gi",
                                                      "storageClassName": "local-path",
                                                      "accessModes": ["ReadWriteOnce"]}},
                              storage_class="nfs")
    assert pvc["spec"]["storageClassName"] == "nfs"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "5Gi"
    helper = p.helper_pod("ns", "c", "img", purpose="restore")
    assert helper["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "c"
    assert helper["spec"]["containers"][0]["image"] == "img"
    # the directory travels as an argument, never inside the script
    assert p.script_argv(p.BACKUP_SCRIPT, "/a b;rm -rf /")[-1] == "/a b;rm -rf /"
