"""The catalogue of TTHC procedures (thủ tục hành chính): what each is, and the datasets it needs.

Read once from the TOML file named by `lookup.procedures_file` (procedures.toml by default). A
procedure lists the datasets a dossier prefill asks for and the purposes a request may state.
`ProcedureCatalogue.problems(catalog)` names every dataset a procedure lists that no configured
source serves, so that a wrong catalogue stops the start instead of failing lookups later.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import Field, ValidationError, field_validator

from bus.catalog import Catalog
from bus.errors import SettingsError
from bus.schemas.common import Model, NFCStr
from bus.schemas.lookup import check_dataset_names, dataset_names_schema
from bus.settings import LookupSettings


class Procedure(Model):
    code: str = Field(min_length=1, max_length=64, description="TTHC procedure code.")
    name: NFCStr = Field(min_length=1, description="The procedure's official (Vietnamese) name.")
    english: str | None = Field(default=None, description="Its name in English.")
    group: str | None = Field(default=None, description="Interconnected group, if any.")
    legal_basis: NFCStr = Field(min_length=1)
    datasets: list[str] = Field(min_length=1, json_schema_extra=dataset_names_schema)
    purposes: list[NFCStr] = Field(min_length=1, description="Purposes a request may state.")

    @field_validator("datasets")
    @classmethod
    def _dataset_names(cls, value: list[str]) -> list[str]:
        return check_dataset_names(value)


class ProcedureCatalogue:
    def __init__(self, procedures: list[Procedure]) -> None:
        self.procedures = {procedure.code: procedure for procedure in procedures}

    @classmethod
    def load(cls, path: Path) -> ProcedureCatalogue:
        """The catalogue in `path`; SettingsError naming the file, the entry and the field."""
        try:
            with path.open("rb") as file:
                data = tomllib.load(file)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"{path}: not a readable TOML file: {exc}") from None
        entries = data.get("procedure")
        if not isinstance(entries, list) or not entries:
            raise SettingsError(f"{path}: expected [[procedure]] tables, found none")
        procedures: list[Procedure] = []
        problems: list[str] = []
        for number, entry in enumerate(entries, start=1):
            try:
                procedures.append(Procedure.model_validate(entry))
            except ValidationError as exc:
                for error in exc.errors():
                    field = ".".join(str(part) for part in error["loc"])
                    problems.append(
                        f"procedure {number} ({entry.get('code')!r}): {field}: {error['msg']}"
                    )
        codes = [str(entry.get("code")) for entry in entries if isinstance(entry, dict)]
        problems += [
            f"procedure code {code!r} is listed twice"
            for code in sorted(set(codes))
            if codes.count(code) > 1
        ]
        if problems:
            raise SettingsError(f"{path}:\n  " + "\n  ".join(problems))
        return cls(procedures)

    def get(self, code: str) -> Procedure | None:
        return self.procedures.get(code)

    def all(self) -> list[Procedure]:
        return [self.procedures[code] for code in sorted(self.procedures)]

    def problems(self, catalog: Catalog) -> list[str]:
        """Datasets that procedures list and no configured source serves."""
        return [
            f"procedure {procedure.code!r} lists dataset {dataset!r}, which no configured source "
            f"serves (known: {catalog.names()})"
            for procedure in self.all()
            for dataset in procedure.datasets
            if dataset not in catalog
        ]


def load_procedures(settings: LookupSettings, catalog: Catalog) -> ProcedureCatalogue:
    """The catalogue of `lookup.procedures_file`; SettingsError when it names a dataset no
    source serves."""
    procedures = ProcedureCatalogue.load(settings.procedures_path())
    wrong = procedures.problems(catalog)
    if wrong:
        raise SettingsError(
            "the procedure catalogue names unknown datasets:\n  " + "\n  ".join(wrong)
        )
    return procedures
