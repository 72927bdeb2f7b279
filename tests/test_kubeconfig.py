"""Kubeconfig resolution follows kubectl's rules, not the Python client's."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_runai_dr.errors import ConfigError
from kubectl_runai_dr.kube.kubeconfig import (
    kubeconfig_paths,
    merge_kubeconfigs,
    read_kubeconfig,
    select_context,
)


def _cfg(ctx: str, server: str, current: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": ctx, "cluster": {"server": server,
                                                "certificate-authority": "ca.crt"}}],
        "contexts": [{"name": ctx, "context": {"cluster": ctx, "user": ctx}}],
        "users": [{"name": ctx, "user": {"token": "t"}}],
    }
    if current:
        doc["current-context"] = current
    return doc


def test_paths_flag_wins_over_env() -> None:
    env = {"KUBECONFIG": f"/a{os.pathsep}/b", "HOME": "/home/u"}
    assert kubeconfig_paths("/x", env) == [Path("/x")]
    assert kubeconfig_paths(None, env) == [Path("/a"), Path("/b")]
    assert kubeconfig_paths(None, {"HOME": "/home/u"}) == [Path("/home/u/.kube/config")]


def test_first_file_wins_for_current_context_and_entries(tmp_path: Path) -> None:
    a = (tmp_path / "a" / "config", _cfg("one", "https://one", current="one"))
    b = (tmp_path / "b" / "config", _cfg("one", "https://other", current="two"))
    b[1]["contexts"].append({"name": "two", "context": {"cluster": "one", "user": "one"}})
    merged = merge_kubeconfigs([a, b])
    assert merged["current-context"] == "one"  # the Python client would pick "two"
    assert [c["name"] for c in merged["contexts"]] == ["one", "two"]
    cluster = merged["clusters"][0]["cluster"]
    assert cluster["server"] == "https://one"
    # relative paths resolve against the file that defined them
    assert cluster["certificate-authority"] == str((tmp_path / "a").resolve() / "ca.crt")


def test_unknown_context_names_known_ones(tmp_path: Path) -> None:
    merged = merge_kubeconfigs([(tmp_path / "c", _cfg("prod", "https://p", current="prod"))])
    assert select_context(merged, None)[0] == "prod"
    with pytest.raises(ConfigError, match=r'context "staging" not found.*known contexts: prod'):
        select_context(merged, "staging")


def test_missing_explicit_file_and_garbage(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_kubeconfig([tmp_path / "nope"], explicit=True)
    assert read_kubeconfig([tmp_path / "nope"], explicit=False) is None
    bad = tmp_path / "bad"
    bad.write_text("clusters: [unclosed")
    with pytest.raises(ConfigError, match="cannot read kubeconfig"):
        read_kubeconfig([bad], explicit=False)
    good = tmp_path / "good"
    good.write_text(yaml.safe_dump(_cfg("x", "https://x", current="x")))
    cfg = read_kubeconfig([tmp_path / "nope", good], explicit=False)
    assert cfg is not None and cfg["current-context"] == "x"
