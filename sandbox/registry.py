"""The simulated national databases, found without a list to edit.

A simulated source is a `SimulatedSource` subclass decorated with `@register`, either in the
module `sandbox/<package>/service.py` of a package under sandbox/ (a source with a generator
and data files of its own), or in a plain module `sandbox/<name>.py` (a small source in one
file, as `tthc-bus adapter new` writes one). `discover()` imports every such module, so a new
source plugs in by adding its package or its module; sandbox/server.py does not change. The
plain modules that are the sandbox's own machinery (`INFRASTRUCTURE`) are not imported by
`discover()`, nor private ones (`_name.py`): a new module of machinery goes into that set, or is
made private.
"""

from __future__ import annotations

import importlib
import pkgutil
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, TypeVar

from starlette.routing import BaseRoute

import sandbox
from sandbox.changes import Change, ChangeLog, SandboxState
from sandbox.faults import FaultInjector
from sandbox.world import World

SubjectKind = Literal["personal_id", "enterprise_code"]


class SimulatedSource(ABC):
    """One simulated national database: its native routes over the shared `World`."""

    name: ClassVar[str]  # the source's name in the bus's settings, e.g. "insurance"
    subject: ClassVar[SubjectKind] = "personal_id"  # what `sample` lists
    description: ClassVar[str] = ""

    def __init__(self, world: World, faults: FaultInjector | None = None) -> None:
        self.world = world
        self.faults = faults or FaultInjector()
        # Until `enable_changes`: an empty feed and a state of its own.
        self.changes = ChangeLog(self.name)
        self.state = SandboxState()

    # -- the change feed and updates (sandbox.changes) ---------------------------------------

    def backlog_change(self, sequence: int) -> Change | None:
        """The backlog's change `sequence` (1-based), a pure function of the world's seed and
        `sequence`; None (the default): this database generates no backlog."""
        return None

    def live_change(self, rng: random.Random) -> Change | None:
        """A plausible new change for the live generator to record (`self.changes.append`),
        or None when this database makes none."""
        return None

    #: What `record` accepts: the kinds of change an officer of this database records.
    recordable: ClassVar[tuple[str, ...]] = ()

    def record(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """Record a change as this database's own officer would (a death registered, say):
        change the state its lookups show, append the change to `self.changes`, return what
        was recorded (the new change's sequence among it). Served as
        ``POST /_sandbox/record/<source>/<kind>``; ValueError for a bad body (400)."""
        raise ValueError(f"{self.name} records none of {kind!r}; it records {self.recordable}")

    def enable_changes(self, backlog: int, state: SandboxState) -> None:
        """Start the change log with `backlog` generated changes, over the sandbox's state."""
        has_backlog = self.backlog_change(1) is not None if backlog else False
        generate = self._backlog_or_fail if has_backlog else None
        self.changes = ChangeLog(self.name, backlog, generate)
        self.state = state

    def _backlog_or_fail(self, sequence: int) -> Change:
        change = self.backlog_change(sequence)
        if change is None:
            raise LookupError(f"{self.name}: backlog change {sequence} not generated")
        return change

    @abstractmethod
    def routes(self) -> Sequence[BaseRoute]:
        """The native protocol's routes (paths under the source's own prefix, e.g. /bhxh)."""

    @abstractmethod
    def holds(self, index: int) -> bool:
        """Whether citizen (or, for enterprise sources, enterprise) ``index`` has a record here."""

    def subject_of(self, index: int) -> str:
        """The subject id of index ``index``: a personal id, or an enterprise code."""
        if self.subject == "enterprise_code":
            return self.world.enterprise_code(index)
        return self.world.population.personal_id(index)

    def sample(self, n: int, seed: int | None = None) -> list[str]:
        """Up to ``n`` distinct subjects this source holds, drawn with ``seed``."""
        size = (
            self.world.enterprise_count if self.subject == "enterprise_code" else self.world.count
        )
        rng = random.Random(seed)
        found: list[str] = []
        for index in rng.sample(range(size), size):
            if len(found) >= n:
                break
            if self.holds(index):
                found.append(self.subject_of(index))
        return found


SourceClass = TypeVar("SourceClass", bound=type[SimulatedSource])
# The plain modules of sandbox/ that are its machinery, not sources (see the module doc).
INFRASTRUCTURE = frozenset(
    {"changes", "faults", "reference", "registry", "server", "soap", "world"}
)
_REGISTRY: dict[str, type[SimulatedSource]] = {}


def register(cls: SourceClass) -> SourceClass:
    """Class decorator: make a simulated source known to `discover()`."""
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f"two simulated sources named {cls.name!r}: {existing} and {cls}")
    _REGISTRY[cls.name] = cls
    return cls


def discover() -> dict[str, type[SimulatedSource]]:
    """Every registered source, after importing each `sandbox/<package>/service.py` and each
    plain module `sandbox/<name>.py` that is neither machinery nor private."""
    for module in pkgutil.iter_modules(sandbox.__path__):
        if module.ispkg:
            try:
                importlib.import_module(f"sandbox.{module.name}.service")
            except ModuleNotFoundError as error:
                if error.name != f"sandbox.{module.name}.service":
                    raise
        elif module.name not in INFRASTRUCTURE and not module.name.startswith("_"):
            importlib.import_module(f"sandbox.{module.name}")
    return dict(sorted(_REGISTRY.items()))
