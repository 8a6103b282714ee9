"""The TTHC procedure catalogue: the shipped file, its checks, and GET /v1/procedures."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.errors import SettingsError
from bus.procedures import ProcedureCatalogue
from bus.settings import load_settings
from connectors.catalog import load_catalog

SHIPPED = load_settings().lookup.procedures_path()


def test_the_shipped_catalogue_holds_the_procedures_of_the_domain() -> None:
    catalogue = ProcedureCatalogue.load(SHIPPED)
    groups = {p.group for p in catalogue.all() if p.group}
    assert groups == {"Decree 63/2024, group 1", "Decree 63/2024, group 2"}
    names = " | ".join(p.english or "" for p in catalogue.all())
    for wanted in ("Marriage", "business registration", "Driver licence", "Unemployment"):
        assert wanted in names
    birth = next(p for p in catalogue.all() if p.group == "Decree 63/2024, group 1")
    assert "insurance.health_card" in birth.datasets


def test_every_dataset_the_catalogue_lists_is_served() -> None:
    catalogue = ProcedureCatalogue.load(SHIPPED)
    assert catalogue.problems(load_catalog(load_settings())) == []


def test_a_wrong_catalogue_is_refused_naming_the_entry_and_field(tmp_path: Path) -> None:
    file = tmp_path / "procedures.toml"
    file.write_text(
        '[[procedure]]\ncode = "A"\nname = "x"\nlegal_basis = "y"\ndatasets = ["bad name"]\n'
        'purposes = ["z"]\n\n[[procedure]]\ncode = "A"\nname = "x"\nlegal_basis = "y"\n'
        'datasets = ["population.identity"]\npurposes = ["z"]\n'
    )
    with pytest.raises(SettingsError) as raised:
        ProcedureCatalogue.load(file)
    message = str(raised.value)
    assert "procedure 1 ('A'): datasets" in message
    assert "must look like 'source.dataset'" in message
    assert "procedure code 'A' is listed twice" in message


def test_a_procedure_naming_an_unknown_dataset_is_a_problem(tmp_path: Path) -> None:
    file = tmp_path / "procedures.toml"
    file.write_text(
        '[[procedure]]\ncode = "A"\nname = "x"\nlegal_basis = "y"\n'
        'datasets = ["tax.record"]\npurposes = ["z"]\n'
    )
    problems = ProcedureCatalogue.load(file).problems(load_catalog(load_settings()))
    assert problems and "'tax.record'" in problems[0]
