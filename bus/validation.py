"""The checks of a lookup request beyond its model, the same for every entry point: the HTTP
gateway (a 400), the Python client and the CLI (before anything is sent: `InvalidLookup`, exit
2), from the same catalogue, with the same messages.

The model's own rules (field lengths, the forms of a personal id and an enterprise code, dataset
names) are pydantic's, in bus/schemas; here is what needs the catalogue: which datasets the bus
serves, the kind of subject each is asked by, and the datasets a procedure needs when a request
names none (a dossier prefill). A problem is `{"field", "message", "type"}`, as the gateway's
problem+json `errors` list it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bus.schemas.lookup import Subject, SubjectKind

Problem = dict[str, str]

SUBJECT_WORDS: dict[SubjectKind, str] = {
    "personal_id": "a personal id (subject.personal_id)",
    "enterprise_code": "an enterprise code (subject.enterprise_code)",
}


def subject_kind(subject: Subject) -> SubjectKind:
    return "personal_id" if subject.personal_id is not None else "enterprise_code"


def wrong_subject(dataset: str, wanted: SubjectKind, subject: Subject) -> str | None:
    """Why `subject` cannot be asked of `dataset`, which takes `wanted`; None if it can."""
    given = subject_kind(subject)
    if given == wanted:
        return None
    return f"dataset {dataset!r} is asked by {SUBJECT_WORDS[wanted]}, not {SUBJECT_WORDS[given]}"


def one_line(problems: Iterable[Problem]) -> str:
    """The problems as the gateway's `detail` says them: `field: message; ...`."""
    return "; ".join(f"{p['field']}: {p['message']}" for p in problems)


def field_errors(errors: Sequence[Any], within: str | None = None) -> list[Problem]:
    """pydantic's errors as problems: the field's dotted path (`(body)` for the whole), under
    `within` for a part validated on its own (the subject of a request)."""
    return [
        {
            "field": ".".join(
                [*([within] if within else []), *(str(p) for p in error["loc"] if p != "body")]
            )
            or "(body)",
            "message": str(error["msg"]),
            "type": str(error["type"]),
        }
        for error in errors
    ]


class LookupChecks:
    """`served`: dataset -> the kind of subject it is asked by; `needs`: procedure code -> the
    datasets it needs."""

    def __init__(
        self, served: Mapping[str, SubjectKind], needs: Mapping[str, Sequence[str]]
    ) -> None:
        self._served = dict(served)
        self._needs = {code: list(datasets) for code, datasets in needs.items()}

    @classmethod
    def of_catalogues(cls, catalog: Any, procedures: Any) -> LookupChecks:
        """From the bus's own catalogues (bus/catalog.py, bus/procedures.py)."""
        return cls(
            {name: info.subject for name, info in catalog.datasets.items()},
            {p.code: p.datasets for p in procedures.all()},
        )

    @classmethod
    def of_discovery(cls, datasets: Iterable[Any]) -> LookupChecks:
        """From a discovery answer (`DatasetDescription`s): what a client learns of the bus."""
        served: dict[str, SubjectKind] = {}
        needs: dict[str, list[str]] = {}
        for dataset in datasets:
            served[dataset.name] = dataset.subject
            for code in dataset.procedures:
                needs.setdefault(code, []).append(dataset.name)
        return cls(served, needs)

    def known(self) -> list[str]:
        return sorted(self._served)

    def datasets_for(self, procedure_code: str, datasets: list[str] | None) -> list[str] | Problem:
        """The datasets asked for; none given: the procedure's, or the problem if it is not in
        the catalogue."""
        if datasets is not None:
            return datasets
        needed = self._needs.get(procedure_code)
        if needed is None:
            message = (
                f"no datasets given, and procedure {procedure_code!r} is not in the catalogue "
                f"(GET /v1/procedures): give datasets, or one of {sorted(self._needs)}"
            )
            return {"field": "datasets", "message": message, "type": "missing"}
        return needed

    def problems(self, datasets: Sequence[str], subject: Subject) -> list[Problem]:
        """Datasets the bus does not serve, and datasets asked by the wrong kind of subject."""
        found = []
        for i, dataset in enumerate(datasets):
            wanted = self._served.get(dataset)
            if wanted is None:
                message, kind = (
                    f"unknown dataset {dataset!r}; known: {self.known()}",
                    "unknown_dataset",
                )
            elif (wrong := wrong_subject(dataset, wanted, subject)) is not None:
                message, kind = wrong, "wrong_subject"
            else:
                continue
            found.append({"field": f"datasets.{i}", "message": message, "type": kind})
        return found

    def check(
        self, procedure_code: str, datasets: list[str] | None, subject: Subject
    ) -> tuple[list[str], list[Problem]]:
        """The datasets to ask for, and the problems (the request is valid if there are none)."""
        chosen = self.datasets_for(procedure_code, datasets)
        if isinstance(chosen, dict):
            return [], [chosen]
        return chosen, self.problems(chosen, subject)
