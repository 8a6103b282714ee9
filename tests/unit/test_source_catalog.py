"""Start-up check of the configured sources: everything that disagrees is named in one error,
and adapters are found by entry point, also from another installed package."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from bus.errors import SettingsError
from bus.settings import load_settings
from connectors.catalog import catalog_of, load_sources


def problems(**sources: dict[str, object]) -> str:
    with pytest.raises(SettingsError) as raised:
        load_sources(load_settings(sources=sources))
    return str(raised.value)


def test_the_shipped_settings_load_five_sources_and_their_datasets() -> None:
    catalog = catalog_of(load_sources(load_settings()))
    assert catalog.sources() == ["civil", "enterprise", "insurance", "licence", "population"]
    assert {"population.identity", "population.residence", "insurance.participation",
            "insurance.health_card", "enterprise.profile", "enterprise.representatives",
            "enterprise.by_representative", "civil.marital_status", "civil.events",
            "licence.driver"} <= set(catalog.names())  # fmt: skip
    assert catalog.datasets["enterprise.profile"].subject == "enterprise_code"
    assert catalog.datasets["enterprise.by_representative"].subject == "personal_id"


def test_every_problem_is_named_in_one_error() -> None:
    message = problems(
        ghost={"adapter": "no_such_adapter", "url": "http://x"},
        population={"adapter": "population", "url": "http://x", "datasets": ["nope"]},
        bhxh2={"adapter": "insurance", "url": "http://x", "username": "u"},
        licence={"adapter": "licence", "url": "http://x", "timeot_s": 3},
    )
    assert "(4 problems)" in message
    assert "sources.ghost.adapter = 'no_such_adapter'" in message
    assert "installed adapter" in message
    assert "sources.population.datasets: ['nope'] not served" in message
    assert "sources.bhxh2.password (env TTHC_BUS_SOURCES__BHXH2__PASSWORD)" in message
    assert "sources.licence: unknown keys ['timeot_s']" in message


def test_a_missing_mapping_file_is_named_with_the_dataset(tmp_path: Path) -> None:
    module = tmp_path / "brokenadapter.py"
    module.write_text(
        textwrap.dedent(
            """
            from adapters.base import Adapter, Dataset

            class Broken(Adapter):
                name = "broken"
                datasets = (Dataset("record", "no-such-mapping"),)

                def ask(self, dataset, subject, **kwargs):
                    raise AssertionError("never asked: the start-up check refuses it first")
            """
        )
    )
    sys.path.insert(0, str(tmp_path))
    try:
        message = problems(broken={"adapter": "brokenadapter:Broken", "url": "http://x"})
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("brokenadapter", None)
    assert "Broken dataset 'record'" in message
    assert "no-such-mapping.toml" in message


def test_an_adapter_of_another_installed_package_is_found_by_its_entry_point(
    tmp_path: Path,
) -> None:
    """A ministry ships its adapter in its own package: an entry point in the group
    tthc_bus.adapters is all the bus needs."""
    (tmp_path / "ministry_adapter.py").write_text(
        "from adapters.population import PopulationAdapter\n\n"
        "class MinistryAdapter(PopulationAdapter):\n    name = 'ministry'\n"
    )
    dist = tmp_path / "ministry_adapter-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ministry-adapter\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[tthc_bus.adapters]\nministry = ministry_adapter:MinistryAdapter\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        loaded = load_sources(
            load_settings(sources={"ministry": {"adapter": "ministry", "url": "http://x/dancu"}})
        )
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("ministry_adapter", None)
    assert loaded["ministry"].adapter_class.__name__ == "MinistryAdapter"
    assert [d.name for d, _ in loaded["ministry"].datasets] == ["identity", "residence"]
