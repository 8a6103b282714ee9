"""Settings with API keys, for tests that build a gateway in-process (the stack issues its own:
bus.tooling.devstack.DevKeys)."""

from __future__ import annotations

from typing import Any

from bus.settings import Settings, load_settings
from bus.tooling.devstack import DevKeys


def keyed_settings(**overrides: Any) -> tuple[Settings, DevKeys]:
    """The settings (with `overrides`), plus freshly issued keys for every granted agency, an
    auditor and the gateway."""
    keys = DevKeys.issue(load_settings(**overrides))
    auth = {"keys": [record.model_dump(mode="json") for record in keys.records]}
    settings = load_settings(**overrides, auth=auth, gateway={"key": keys.gateway})
    return settings, keys
