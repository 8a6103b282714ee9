"""The sandbox's changed state kept across restarts, as a national database keeps its data.

The world and each feed's backlog are generated from the seed and never stored. What is stored is
what changed while the sandbox ran: the `SandboxState` (each database's facts: births registered,
residences removed, licences revoked, recorded deaths, ...; and the idempotency keys applied) and
the changes appended to each change log. Without it a restarted sandbox would forget them while
the broker remembers: its feeds would start again below the cursors the bus has committed, and
the changes recorded after the restart would reuse sequence numbers (and event ids) the streams
already carry.

One pickle file, written whole to a temporary file and renamed over the last one: at most every
`SAVE_INTERVAL_S` while something changed, and once more when the sandbox stops. A SIGKILL loses
at most that interval. It is read back at the start only if it was written for the same world
(count, seed, backlog); another world's file is set aside, not read. The file is the sandbox's
own (it names no real person): pickle is fine for it, and it is never read from elsewhere.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.changes import SandboxState
from sandbox.registry import SimulatedSource

log = logging.getLogger(__name__)

FORMAT = 1
SAVE_INTERVAL_S = 0.5
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


@dataclass(frozen=True)
class WorldKey:
    """What the generated part depends on: a file written for another world is not read."""

    count: int
    seed: int
    backlog: int


class _Pickler(pickle.Pickler):
    """Locks inside the state (a facts object guards itself) are pickled as new, free locks."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _LOCK_TYPES):
            return (threading.RLock if "RLock" in type(obj).__name__ else threading.Lock, ())
        return NotImplemented


class StateFile:
    """Loads the saved state into a sandbox being built, and saves it while it runs."""

    def __init__(self, path: Path, world: WorldKey) -> None:
        self.path = path
        self.world = world
        self._saved: tuple[Any, ...] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._running: tuple[SandboxState, Mapping[str, SimulatedSource]] | None = None

    # -- at the start ---------------------------------------------------------------------------

    def read(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none for this world."""
        if not self.path.exists():
            return None
        try:
            with self.path.open("rb") as file:
                saved = pickle.load(file)
            if not isinstance(saved, dict) or saved.get("format") != FORMAT:
                raise ValueError(f"not a sandbox state file of format {FORMAT}")
        except Exception as exc:
            aside = self._set_aside()
            log.warning("sandbox state %s unreadable (%s); set aside as %s", self.path, exc, aside)
            return None
        if saved.get("world") != self.world:
            aside = self._set_aside()
            log.warning(
                "sandbox state %s is of another world (%s, not %s); set aside as %s",
                self.path,
                saved.get("world"),
                self.world,
                aside,
            )
            return None
        return saved

    def _set_aside(self) -> Path:
        aside = self.path.with_name(self.path.name + ".old")
        os.replace(self.path, aside)
        return aside

    @staticmethod
    def restore_state(saved: Mapping[str, Any], state: SandboxState) -> None:
        """Before the sources take their facts from `state`."""
        with state.lock:
            state.facts.update(saved["facts"])
            state.restore_applied(saved["applied"])

    @staticmethod
    def restore_logs(saved: Mapping[str, Any], sources: Mapping[str, SimulatedSource]) -> None:
        """After the sources made their change logs (backlog first, then what was appended)."""
        appended: Mapping[str, list[Any]] = saved["appended"]
        for name, changes in appended.items():
            source = sources.get(name)
            if source is None:
                log.warning("sandbox state: changes of an unknown source %r not restored", name)
                continue
            source.changes.restore(changes)

    # -- while it runs --------------------------------------------------------------------------

    def save(self, state: SandboxState, sources: Mapping[str, SimulatedSource]) -> bool:
        """Write the state if it changed since the last save; True if it was written."""
        with self._lock:
            # The mark first: a change made while this copies is saved again next round. No
            # lock is held inside another (an update holds the state's, then a log's).
            with state.lock:
                applied = state.applied_count()
            mark = (applied, *(source.changes.head for source in sources.values()))
            if mark == self._saved:
                return False
            appended = {name: source.changes.appended() for name, source in sources.items()}
            buffer = io.BytesIO()
            with state.lock:
                _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(
                    {
                        "format": FORMAT,
                        "world": self.world,
                        "facts": state.facts,
                        "applied": state.applied_snapshot(),
                        "appended": appended,
                    }
                )
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(self.path.name + ".tmp")
            temporary.write_bytes(buffer.getvalue())
            os.replace(temporary, self.path)
            self._saved = mark
            return True

    def start(self, state: SandboxState, sources: Mapping[str, SimulatedSource]) -> None:
        """Save in the background while something changes; `stop` saves a last time."""

        def run() -> None:
            while not self._stop.wait(SAVE_INTERVAL_S):
                try:
                    self.save(state, sources)
                except Exception as exc:  # keep serving; the next round tries again
                    log.error("sandbox state not saved to %s: %r", self.path, exc)

        self._running = (state, sources)
        self._thread = threading.Thread(target=run, name="sandbox-state", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop saving in the background, and save what changed since the last round."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._running is not None:
            self.save(*self._running)
