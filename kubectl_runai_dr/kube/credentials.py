"""The kubeconfig user's credentials, read the way kubectl reads them.

Two places where the official client differs from kubectl, to the user's cost:

- ``tokenFile`` is sent as read, trailing newline included (``echo "$TOKEN" > file``), and
  the HTTP library then refuses the header in an error that quotes the whole token.
  kubectl trims the file's surrounding white space; so does :func:`resolve_tokens`.
- a failing ``exec`` credential plugin is logged (``ERROR:root:...`` on stderr) and the
  request is then sent without credentials, so the server's 401 is all the user sees.
  :class:`Loader` runs the plugin itself (:func:`run_exec_plugin`) and reports its
  failure, with the plugin's own error output.

No message built here quotes a credential: not the token, the password, the keys or the
plugin's standard output (which holds the credential).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from kubernetes.config.dateutil import parse_rfc3339
from kubernetes.config.kube_config import FileOrData, KubeConfigLoader

from kubectl_runai_dr.errors import ConfigError
from kubectl_runai_dr.kube.errors import clean_text

# What an HTTP header value may hold: visible ASCII, space and tab (RFC 9110 field-vchar,
# obs-text left out: a token is ASCII).
_HEADER_SAFE = re.compile(r"[\t\x20-\x7e]*")
STDERR_TAIL = 4000


def _check_header_value(value: str, what: str) -> str:
    if not _HEADER_SAFE.fullmatch(value):
        raise ConfigError(
            f"{what} holds a line break or other characters that cannot be sent in an "
            "HTTP header (only the first line of a token file is a token)",
            hint="write the token alone on one line (`kubectl config view` shows the user; "
                 "the token itself is not printed here)")
    return value


def resolve_tokens(config: Mapping[str, Any], user_name: str | None) -> dict[str, Any]:
    """``config`` with the user's ``tokenFile`` read into ``token`` (white space around it
    trimmed, as kubectl does; the file wins over an inline token, as in kubectl) and an
    inline token trimmed too. A token that still cannot be a header value is an error
    that names the file, never its content."""
    users = []
    for entry in config.get("users") or []:
        user = dict(entry.get("user") or {})
        if entry.get("name") == user_name:
            label = f'the token of user "{user_name}" in the kubeconfig'
            token_file = user.get("tokenFile")
            if isinstance(token_file, str) and token_file:
                path = Path(token_file).expanduser()
                try:
                    text = path.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                    raise ConfigError(
                        f'cannot read the token file {path} of user "{user_name}": '
                        f"{(why or 'unreadable').lower()}",
                        hint="fix tokenFile in the kubeconfig, or the file's permissions",
                    ) from None
                user.pop("tokenFile")
                user["token"] = _check_header_value(text.strip(),
                                                    f"the token file {path} of user "
                                                    f'"{user_name}"')
            elif isinstance(user.get("token"), str):
                user["token"] = _check_header_value(user["token"].strip(), label)
        users.append({**entry, "user": user})
    return {**config, "users": users}


# -- exec credential plugins ----------------------------------------------------------------
def _interactive(mode: str) -> bool:
    if mode == "Never":
        return False
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _pump_stderr(src: IO[bytes], tail: bytearray, echo: bool) -> None:
    while chunk := src.read1(4096):  # type: ignore[attr-defined]
        tail += chunk
        if len(tail) > 2 * STDERR_TAIL:
            del tail[: len(tail) - STDERR_TAIL]
        if echo:  # a plugin asking the user something (device code, password prompt)
            try:
                sys.stderr.write(clean_text(chunk.decode("utf-8", "replace")))
                sys.stderr.flush()
            except (OSError, ValueError):
                echo = False


def run_exec_plugin(exec_config: Mapping[str, Any], *, user_name: str,
                    cluster: Mapping[str, Any] | None = None,
                    cwd: str | None = None,
                    environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run a kubeconfig ``exec`` credential plugin; its ExecCredential ``status``.

    kubectl's rules: ``KUBERNETES_EXEC_INFO`` describes the request; the plugin gets the
    terminal's stdin when it may be interactive. Its stderr is kept (and shown as it comes
    when interactive, control characters removed); a failure is a :class:`ConfigError`
    saying that the plugin failed, with that output."""
    command = str(exec_config.get("command") or "")
    api_version = str(exec_config.get("apiVersion") or "")
    who = f'the credential plugin "{command}" of user "{user_name}"'
    if not command or not api_version:
        missing = "command" if not command else "apiVersion"
        raise ConfigError(f'the exec section of user "{user_name}" has no {missing}',
                          hint="fix the kubeconfig (`kubectl config view`)")
    mode = str(exec_config.get("interactiveMode") or "IfAvailable")
    interactive = _interactive(mode)
    if mode == "Always" and not interactive:
        raise ConfigError(f"{who} needs a terminal to ask for credentials (interactiveMode: "
                          "Always), and standard input is not one",
                          hint="log in once from a terminal, or use non-interactive "
                               "credentials for scheduled runs")
    spec: dict[str, Any] = {"interactive": interactive}
    if exec_config.get("provideClusterInfo") and cluster is not None:
        info = dict(cluster)
        for ext in info.get("extensions") or []:
            if isinstance(ext, dict) and ext.get("name") == "client.authentication.k8s.io/exec":
                info["config"] = ext.get("extension")
        spec["cluster"] = info
    env = dict(os.environ if environ is None else environ)
    for item in exec_config.get("env") or []:
        if isinstance(item, dict) and "name" in item:
            env[str(item["name"])] = str(item.get("value", ""))
    env["KUBERNETES_EXEC_INFO"] = json.dumps(
        {"apiVersion": api_version, "kind": "ExecCredential", "spec": spec})
    argv = [command, *[str(a) for a in exec_config.get("args") or []]]
    try:
        proc = subprocess.Popen(argv, stdin=None if interactive else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                cwd=cwd or None)
    except OSError as exc:
        install = clean_text(str(exec_config.get("installHint") or ""), limit=500)
        why = "was not found" if isinstance(exc, FileNotFoundError) else (
            f"could not be started ({(exc.strerror or 'error').lower()})")
        raise ConfigError(f"{who} {why}",
                          hint=install or "install it, or fix users[].user.exec.command in "
                                          "the kubeconfig") from None
    tail = bytearray()
    assert proc.stderr is not None and proc.stdout is not None
    pump = threading.Thread(target=_pump_stderr, args=(proc.stderr, tail, interactive),
                            daemon=True)
    pump.start()
    try:
        stdout = proc.stdout.read()
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    pump.join(timeout=5)
    said = clean_text(bytes(tail).decode("utf-8", "replace"), limit=STDERR_TAIL,
                      keep_end=True).strip()
    if code != 0:
        shown = "its output is above" if interactive else (said or "no error output")
        raise ConfigError(
            f"{who} failed (exit code {code}): {shown}",
            hint="log in again with the tool that provides the credentials (its message "
                 "says how), then retry; `kubectl config view --minify` shows the plugin")
    try:
        data = json.loads(stdout)
    except ValueError:
        data = None
    status = data.get("status") if isinstance(data, dict) else None
    problem = ""
    if not isinstance(status, dict):
        problem = "its output is not an ExecCredential"
    elif data.get("apiVersion") != api_version:
        problem = f"it answered another apiVersion than {api_version}"
    elif not status.get("token") and not (status.get("clientCertificateData")
                                          and status.get("clientKeyData")):
        problem = "its answer holds neither a token nor a client certificate and key"
    if problem:
        raise ConfigError(f"{who} returned no usable credential: {problem}",
                          hint="check the plugin's version and arguments (`kubectl config "
                               "view --minify`)")
    assert isinstance(status, dict)
    if status.get("token"):
        _check_header_value(str(status["token"]), f"the token returned by {who}")
    return status


class Loader(KubeConfigLoader):
    """The official loader, with exec plugins run by :func:`run_exec_plugin` (a failure is
    raised, not logged and replaced by an anonymous request)."""

    def __init__(self, *args: Any, user_name: str = "", **kwargs: Any) -> None:
        self._dr_user_name = user_name
        super().__init__(*args, **kwargs)

    def _load_from_exec_plugin(self) -> bool | None:
        user, cluster = self._user, self._cluster
        if user is None or cluster is None or "exec" not in user:
            return None
        base_path = self._get_base_path(cluster.path)
        status = run_exec_plugin(user["exec"].value, user_name=self._dr_user_name,
                                 cluster=cluster.value, cwd=base_path)
        if status.get("token"):
            self.token = f"Bearer {status['token']}"
        else:
            self.cert_file = FileOrData(status, None, data_key_name="clientCertificateData",
                                        file_base_path=base_path, base64_file_content=False,
                                        temp_file_path=self._temp_file_path).as_file()
            self.key_file = FileOrData(status, None, data_key_name="clientKeyData",
                                       file_base_path=base_path, base64_file_content=False,
                                       temp_file_path=self._temp_file_path).as_file()
        if status.get("expirationTimestamp"):
            self.expiry = parse_rfc3339(status["expirationTimestamp"])
        return True
