"""Find the adapter class a source is configured with.

`[sources.<name>] adapter = ...` is either the name of an entry point in the group
`tthc_bus.adapters` (the bus's own adapters are registered there in pyproject.toml, and a
ministry's package can add its own without forking the bus), or an import path `module:Class`.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from adapters.base import Adapter
from bus.errors import SettingsError
from bus.settings import SourceSettings

ENTRY_POINT_GROUP = "tthc_bus.adapters"


def installed_adapters() -> dict[str, str]:
    """Entry-point name -> `module:Class` of every adapter installed in this environment."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def adapter_class(spec: str, *, source: str = "?") -> type[Adapter]:
    """The Adapter subclass named by `spec`; SettingsError saying what is wrong otherwise."""
    key = f"sources.{source}.adapter"
    installed = installed_adapters()
    import_path = installed.get(spec, spec)
    module_name, _, class_name = import_path.partition(":")
    if not module_name or not class_name:
        raise SettingsError(
            f"{key} = {spec!r}: expected an installed adapter ({', '.join(sorted(installed))}) "
            "or 'module:Class'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SettingsError(f"{key} = {spec!r}: cannot import {module_name}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise SettingsError(f"{key} = {spec!r}: {module_name} has no {class_name}")
    if not isinstance(cls, type) or not issubclass(cls, Adapter):
        raise SettingsError(
            f"{key} = {spec!r}: expected a subclass of adapters.base.Adapter, got {cls!r}"
        )
    return cls


def load_adapter(name: str, settings: SourceSettings) -> Adapter:
    """A new adapter for source `name`, of the class its settings name."""
    return adapter_class(settings.adapter, source=name)(name, settings)
