"""Find the adapter class a source is configured with (`adapter = "module:Class"`)."""

from __future__ import annotations

import importlib

from adapters.base import Adapter
from bus.errors import SettingsError
from bus.settings import SourceSettings


def adapter_class(import_path: str, *, source: str = "?") -> type[Adapter]:
    """The Adapter subclass at `module:Class`; SettingsError saying what is wrong otherwise."""
    key = f"sources.{source}.adapter"
    module_name, _, class_name = import_path.partition(":")
    if not module_name or not class_name:
        raise SettingsError(f"{key} = {import_path!r}: expected 'module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SettingsError(f"{key} = {import_path!r}: cannot import {module_name}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise SettingsError(f"{key} = {import_path!r}: {module_name} has no {class_name}")
    if not isinstance(cls, type) or not issubclass(cls, Adapter):
        raise SettingsError(
            f"{key} = {import_path!r}: expected a subclass of adapters.base.Adapter, got {cls!r}"
        )
    return cls


def load_adapter(name: str, settings: SourceSettings) -> Adapter:
    """A new adapter for source `name`, of the class its settings name."""
    return adapter_class(settings.adapter, source=name)(name, settings)
