"""Who may see what, and why: deny by default, purpose-bound.

A lookup is decided before any source is called, in this order:
1. the procedure must be in the catalogue (procedures.toml), and the request's purpose one of
   those it allows (purpose limitation, PDP Law 91/2025): otherwise the whole request is denied;
2. each dataset must be served by a source and asked by the right kind of subject;
3. a grant in `[[policy.grants]]` must give the requesting agency that dataset for that
   procedure. Grants add up: the fields granted are the union of every matching grant's, and
   `"*"` is every field. Fields not granted are removed by the lookup connector before the record
   leaves the worker, and the reply lists them as withheld.

`Policy.explain` answers the same question for a person (`tthc-bus policy check`), and
`Policy.problems` checks the grants against the catalogues at start-up.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from bus.catalog import Catalog
from bus.errors import SettingsError
from bus.procedures import Procedure, ProcedureCatalogue
from bus.schemas import DatasetError, LookupRequest
from bus.settings import ALL_FIELDS, Grant


def same_purpose(a: str, b: str) -> bool:
    """Purposes compare as text: NFC, case and runs of whitespace do not matter."""

    def norm(text: str) -> str:
        return " ".join(unicodedata.normalize("NFC", text).casefold().split())

    return norm(a) == norm(b)


@dataclass(frozen=True)
class Decision:
    granted: dict[str, list[str] | None] = field(default_factory=dict)
    """Dataset -> fields granted (None: the whole dataset)."""
    refused: list[DatasetError] = field(default_factory=list)

    @property
    def denied(self) -> bool:
        return not self.granted


@dataclass(frozen=True)
class Explanation:
    """A decision on one dataset, with the reasons a person can act on."""

    allowed: bool
    fields: list[str] | None  # granted fields (None: all); empty when refused
    withheld: list[str]
    reasons: list[str]
    code: str  # "granted" or the refusal's code


class Policy:
    def __init__(
        self, catalog: Catalog, procedures: ProcedureCatalogue, grants: Sequence[Grant]
    ) -> None:
        self._catalog = catalog
        self._procedures = procedures
        self._dataset_sources = catalog.dataset_sources()
        # (agency, procedure, dataset) -> granted fields, None = all; built once.
        self._grants: dict[tuple[str, str, str], set[str] | None] = {}
        self._agencies: dict[str, list[Grant]] = {}
        for grant in grants:
            self._agencies.setdefault(grant.agency, []).append(grant)
            for procedure in grant.procedures:
                for dataset, fields in grant.datasets.items():
                    slot = (grant.agency, procedure, dataset)
                    known = self._grants.get(slot, set())
                    if fields == ALL_FIELDS or known is None:
                        self._grants[slot] = None
                    else:
                        self._grants[slot] = known | set(fields)

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    @property
    def procedures(self) -> ProcedureCatalogue:
        return self._procedures

    # -- what the router asks -------------------------------------------------------------------

    def sources(self) -> list[str]:
        return sorted(set(self._dataset_sources.values()))

    def datasets(self) -> list[str]:
        return sorted(self._dataset_sources)

    def source_of(self, dataset: str) -> str:
        return self._dataset_sources[dataset]

    def decide(self, request: LookupRequest) -> Decision:
        procedure = self._procedures.get(request.procedure_code)
        whole = self._request_refusal(procedure, request.procedure_code, request.purpose)
        if whole is not None:
            code, message = whole
            return Decision(refused=[self._refusal(d, code, message) for d in request.datasets])
        agency = request.requester.agency_code
        granted: dict[str, list[str] | None] = {}
        refused: list[DatasetError] = []
        for dataset in request.datasets:
            problem = self._dataset_refusal(dataset, request)
            if problem is not None:
                refused.append(self._refusal(dataset, *problem))
                continue
            slot = (agency, request.procedure_code, dataset)
            if slot not in self._grants:
                code, message = self._why_not_granted(agency, request.procedure_code, dataset)
                refused.append(self._refusal(dataset, code, message))
                continue
            fields = self._grants[slot]
            granted[dataset] = None if fields is None else sorted(fields)
        return Decision(granted=granted, refused=refused)

    def granted_to(self, agency: str) -> dict[tuple[str, str], list[str] | None]:
        """What `agency` may ask for: (procedure, dataset) -> fields granted (None: all)."""
        return {
            (procedure, dataset): None if fields is None else sorted(fields)
            for (holder, procedure, dataset), fields in self._grants.items()
            if holder == agency
        }

    def withheld(self, dataset: str, fields: list[str] | None) -> list[str]:
        """The dataset's fields a grant of `fields` leaves out."""
        if fields is None or dataset not in self._catalog:
            return []
        return [name for name in self._catalog.datasets[dataset].fields if name not in fields]

    # -- what a person asks -----------------------------------------------------------------

    def explain(
        self, agency: str, procedure_code: str, dataset: str, purpose: str | None = None
    ) -> Explanation:
        reasons: list[str] = []
        procedure = self._procedures.get(procedure_code)
        if procedure is None:
            whole = self._request_refusal(None, procedure_code, purpose or "")
        elif purpose is None:
            reasons.append(f"purposes procedure {procedure_code!r} allows: {procedure.purposes}")
            whole = None
        else:
            whole = self._request_refusal(procedure, procedure_code, purpose)
            if whole is None:
                reasons.append(f"purpose {purpose!r} is one procedure {procedure_code!r} allows")
        if whole is not None:
            return Explanation(False, [], [], [whole[1]], whole[0])
        if dataset not in self._catalog:
            message = f"no source serves {dataset!r}; known: {self._catalog.names()}"
            return Explanation(False, [], [], [message], "unknown_dataset")
        slot = (agency, procedure_code, dataset)
        if slot not in self._grants:
            code, message = self._why_not_granted(agency, procedure_code, dataset)
            return Explanation(False, [], [], [*reasons, message], code)
        fields = self._grants[slot]
        matching = [
            grant.description or f"grant {i + 1} of agency {agency!r}"
            for i, grant in enumerate(self._agencies.get(agency, []))
            if procedure_code in grant.procedures and dataset in grant.datasets
        ]
        granted = None if fields is None else sorted(fields)
        withheld = self.withheld(dataset, granted)
        what = "every field" if granted is None else f"fields {granted}"
        reasons.append(f"granted {what} by: {'; '.join(matching)}")
        if withheld:
            reasons.append(f"withheld (not granted): {withheld}")
        return Explanation(True, granted, withheld, reasons, "granted")

    # -- start-up check -------------------------------------------------------------------

    def problems(self) -> list[str]:
        """Grants that name a procedure, a dataset or a field the bus does not know."""
        found = []
        for agency, grants in self._agencies.items():
            for number, grant in enumerate(grants, start=1):
                where = f"policy grant {number} of agency {agency!r}"
                for procedure in grant.procedures:
                    if self._procedures.get(procedure) is None:
                        found.append(f"{where}: procedure {procedure!r} is not in the catalogue")
                for dataset, fields in grant.datasets.items():
                    if dataset not in self._catalog:
                        found.append(f"{where}: no source serves dataset {dataset!r}")
                    elif fields != ALL_FIELDS:
                        known = self._catalog.datasets[dataset].fields
                        found += [
                            f"{where}: dataset {dataset!r} has no field {name!r} "
                            f"(its fields: {list(known)})"
                            for name in fields
                            if name not in known
                        ]
        return found

    def check(self) -> Policy:
        """Self, or SettingsError naming every grant that does not fit the catalogues."""
        wrong = self.problems()
        if wrong:
            raise SettingsError("the policy grants do not fit:\n  " + "\n  ".join(wrong))
        return self

    # -- reasons --------------------------------------------------------------------------

    def _request_refusal(
        self, procedure: Procedure | None, code: str, purpose: str
    ) -> tuple[str, str] | None:
        if procedure is None:
            return (
                "unknown_procedure",
                f"procedure {code!r} is not in the procedure catalogue (GET /v1/procedures): "
                "nothing is granted for it",
            )
        if not any(same_purpose(purpose, allowed) for allowed in procedure.purposes):
            return (
                "purpose_not_allowed",
                f"the purpose {purpose!r} is not one procedure {code!r} allows: "
                f"{procedure.purposes}",
            )
        return None

    def _dataset_refusal(self, dataset: str, request: LookupRequest) -> tuple[str, str] | None:
        if dataset not in self._dataset_sources:
            return "unknown_dataset", (
                f"no source serves {dataset!r}; known: {sorted(self._dataset_sources)}"
            )
        problem = self._catalog.subject_problem(dataset, request.subject)
        if problem is not None:
            return "invalid_request", problem
        return None

    def _why_not_granted(self, agency: str, procedure: str, dataset: str) -> tuple[str, str]:
        grants = self._agencies.get(agency, [])
        if not grants:
            detail = f"no policy grants agency {agency!r} anything"
        elif not any(procedure in grant.procedures for grant in grants):
            detail = f"the grants of agency {agency!r} do not cover procedure {procedure!r}"
        else:
            detail = (
                f"no policy grants agency {agency!r} dataset {dataset!r} for procedure "
                f"{procedure!r}"
            )
        return "not_granted", detail

    def _refusal(self, dataset: str, code: str, message: str) -> DatasetError:
        source = self._dataset_sources.get(dataset, dataset.split(".", 1)[0])
        return DatasetError(
            dataset=dataset, source=source, code=code, message=message, retryable=False
        )
