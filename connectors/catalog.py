"""Load the configured sources and check that they agree before anything starts.

As Kafka Connect validates a connector's config before running it: for every `[sources.<name>]`
the adapter is found (adapters/registry.py), the settings are validated with the adapter's own
settings model, each dataset the adapter declares gets its mapping file loaded and its target
schema resolved, and anything that does not agree is collected. One `SettingsError` then lists
every problem, each naming the key or the file; nothing starts half-configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import get_close_matches

from pydantic import ValidationError

from adapters.base import Adapter, Dataset
from adapters.registry import adapter_class
from bus.catalog import Catalog, DatasetInfo
from bus.errors import SettingsError
from bus.settings import Settings, SourceSettings
from mappings.engine import Mapping, MappingFileError, load_mapping

_SUBJECT_KINDS = ("personal_id", "enterprise_code")


@dataclass(frozen=True)
class LoadedSource:
    """A configured source whose adapter, settings and mappings agree."""

    name: str
    settings: SourceSettings  # an instance of the adapter's settings model
    adapter_class: type[Adapter]
    datasets: tuple[tuple[Dataset, Mapping], ...]

    def new_adapter(self) -> Adapter:
        return self.adapter_class(self.name, self.settings)


def load_sources(settings: Settings, only: list[str] | None = None) -> dict[str, LoadedSource]:
    """Every configured source (or those in `only`), checked; SettingsError listing problems."""
    problems: list[str] = []
    loaded: dict[str, LoadedSource] = {}
    for name in sorted(settings.sources if only is None else only):
        raw = settings.sources.get(name)
        if raw is None:
            problems.append(
                f"sources.{name}: no such source; configured: {sorted(settings.sources)}"
            )
            continue
        source = _load_source(name, raw, problems)
        if source is not None:
            loaded[name] = source
    if problems:
        raise SettingsError(
            f"the sources do not agree with their adapters ({len(problems)} problems):\n  "
            + "\n  ".join(problems)
        )
    return loaded


def _load_source(name: str, raw: SourceSettings, problems: list[str]) -> LoadedSource | None:
    try:
        cls = adapter_class(raw.adapter, source=name)
    except SettingsError as exc:
        problems.append(str(exc))
        return None
    try:
        own = cls.settings_model.model_validate(raw.model_dump())
    except ValidationError as exc:
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"])
            env = f"TTHC_BUS_SOURCES__{name.upper()}__{key.upper().replace('.', '__')}"
            problems.append(f"sources.{name}.{key} (env {env}): {error['msg']} ({cls.__name__})")
        return None
    unknown_keys = sorted(own.model_extra or {})
    if unknown_keys:
        known = sorted(cls.settings_model.model_fields)
        guesses = [
            f"{key!r}: did you mean {close[0]!r}, env TTHC_BUS_SOURCES__{name.upper()}__"
            f"{close[0].upper()}?"
            for key in unknown_keys
            if (close := get_close_matches(key, known, n=1))
        ]
        problems.append(
            f"sources.{name}: unknown keys {unknown_keys} for {cls.__name__} "
            f"({'; '.join(guesses) or 'a misspelling?'}); it takes {known}"
        )
        return None
    declared = {dataset.name: dataset for dataset in getattr(cls, "datasets", ())}
    if not declared:
        problems.append(f"sources.{name}: adapter {cls.__name__} declares no datasets")
        return None
    wanted = own.datasets if own.datasets is not None else list(declared)
    unknown = sorted(set(wanted) - set(declared))
    if unknown:
        problems.append(
            f"sources.{name}.datasets: {unknown} not served by {cls.__name__}; it serves "
            f"{sorted(declared)}"
        )
        return None
    datasets: list[tuple[Dataset, Mapping]] = []
    for dataset_name in wanted:
        dataset = declared[dataset_name]
        if dataset.subject not in _SUBJECT_KINDS:
            problems.append(
                f"{cls.__name__} dataset {dataset.name!r}: subject {dataset.subject!r}, expected "
                f"one of {list(_SUBJECT_KINDS)}"
            )
            continue
        try:
            mapping = load_mapping(dataset.mapping)
        except MappingFileError as exc:
            problems.append(f"{cls.__name__} dataset {dataset.name!r}: {exc}")
            continue
        datasets.append((dataset, mapping))
    if len(datasets) != len(wanted):
        return None
    return LoadedSource(name, own, cls, tuple(datasets))


def catalog_of(sources: dict[str, LoadedSource]) -> Catalog:
    return Catalog(
        DatasetInfo(
            f"{source.name}.{dataset.name}",
            source.name,
            dataset.subject,
            mapping.model,
            dataset.description,
        )
        for source in sources.values()
        for dataset, mapping in source.datasets
    )


def load_catalog(settings: Settings) -> Catalog:
    """The catalogue of every configured source (see `load_sources`)."""
    return catalog_of(load_sources(settings))
