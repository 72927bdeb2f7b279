"""The official kubernetes client's answers, typed for the tests that drive it directly: its
models make every field optional, the custom objects API answers `object`, and a call with
_preload_content=False answers urllib3's response whatever the method's annotation says."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import urllib3

T = TypeVar("T")


def some(value: T | None) -> T:
    """A field the server sets (the models type every field as optional)."""
    assert value is not None
    return value


def as_dict(obj: object) -> dict[str, Any]:
    """An object as the custom objects API answers it (its JSON, typed `object`)."""
    assert isinstance(obj, dict)
    return obj


def json_of(resp: object) -> Any:
    """The JSON of an answer left unparsed (_preload_content=False)."""
    assert isinstance(resp, urllib3.HTTPResponse)
    return json.loads(resp.data)
