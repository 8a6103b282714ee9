"""`tthc-bus adapter new NAME --protocol rest|soap`: the files of a new national database.

As Kafka Connect's archetype for a new connector, one command writes what a new source needs,
so that it runs against the sandbox and passes the contract suite (tests/contract/) as written:

- `adapters/<name>.py`: the adapter over the REST base or the SOAP machinery, with its datasets
  (one, `record`, asked by personal id) and its normalized schema model (`<Name>Record`);
- `mappings/<name>.toml`: the native record to that model (`target = "adapters.<name>:..."`);
- `sandbox/<name>.py`: a simulated source over the shared World, speaking the same protocol,
  with the faults of sandbox/faults.py (a plain module: sandbox/registry.py discovers it);
- `tests/adapters/test_<name>_adapter.py`: found, not found, faults, field by field;

and the `[sources.<name>]` block of settings.toml, printed or appended (`--write-settings`).
Nothing is written when any of those files exists, or the name is already a configured source.

The templates are in bus/tooling/templates/ (string.Template, `${placeholder}`): `rest/` and
`soap/` hold the adapter, mapping and sandbox stub of each protocol; `test.py.tmpl`,
`settings.toml.tmpl` and `next-steps.txt.tmpl` serve both.
"""

from __future__ import annotations

import keyword
import re
import tomllib
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from string import Template

from bus.errors import BusError

TEMPLATES = Path(__file__).with_name("templates")
NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
NAME_MAX = 30


class SourceProtocol(StrEnum):
    REST = "rest"
    SOAP = "soap"


class ScaffoldError(BusError):
    """The source cannot be written: the message says which name or file, and why."""


@dataclass(frozen=True)
class GeneratedFile:
    """One file of a new source: where it goes, its template, and what it is (for the report)."""

    path: str  # relative to the project root
    template: str  # relative to TEMPLATES
    what: str


@dataclass(frozen=True)
class NewSource:
    """A new national database: its name, its protocol and the names derived from them."""

    name: str
    protocol: SourceProtocol

    @property
    def class_prefix(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_"))

    @property
    def adapter_class(self) -> str:
        return f"{self.class_prefix}Adapter"

    @property
    def record_class(self) -> str:
        return f"{self.class_prefix}Record"

    @property
    def service_class(self) -> str:
        return f"{self.class_prefix}Service"

    @property
    def prefix(self) -> str:
        """Where the sandbox stub is served (the path of the source's url)."""
        return f"/{self.name}/api" if self.protocol is SourceProtocol.REST else f"/{self.name}/soap"

    @property
    def test_file(self) -> str:
        return f"tests/adapters/test_{self.name}_adapter.py"

    def files(self) -> tuple[GeneratedFile, ...]:
        protocol = self.protocol.value
        return (
            GeneratedFile(
                f"adapters/{self.name}.py",
                f"{protocol}/adapter.py.tmpl",
                f"adapter {self.adapter_class}, schema {self.record_class}",
            ),
            GeneratedFile(
                f"mappings/{self.name}.toml",
                f"{protocol}/mapping.toml.tmpl",
                f"mapping: native record -> {self.record_class}",
            ),
            GeneratedFile(
                f"sandbox/{self.name}.py",
                f"{protocol}/sandbox.py.tmpl",
                f"sandbox stub {self.service_class}, at {self.prefix}",
            ),
            GeneratedFile(
                self.test_file,
                "test.py.tmpl",
                "tests: found, not found, faults, field by field",
            ),
        )

    def placeholders(self, sandbox_url: str) -> dict[str, str]:
        return {
            "name": self.name,
            "upper_name": self.name.upper(),
            "title": self.name.replace("_", " "),
            "protocol": self.protocol.value,
            "class_prefix": self.class_prefix,
            "adapter_class": self.adapter_class,
            "record_class": self.record_class,
            "service_class": self.service_class,
            "prefix": self.prefix,
            "url": sandbox_url.rstrip("/") + self.prefix,
            "test_file": self.test_file,
        }


@dataclass(frozen=True)
class Scaffolded:
    """What `new_source` did: the files written and the settings block (appended or not)."""

    source: NewSource
    files: tuple[GeneratedFile, ...]
    settings_block: str
    settings_file: Path | None  # where the block was appended; None: printed only
    next_steps: str

    def report(self) -> str:
        """What the command prints."""
        width = max(len(file.path) for file in self.files)
        lines = [
            f"Wrote {len(self.files)} files of the {self.source.protocol.value.upper()} source "
            f"{self.source.name}:",
            *(f"  {file.path:<{width}}  {file.what}" for file in self.files),
            "",
            (
                f"Appended to {self.settings_file}:"
                if self.settings_file is not None
                else "Add to settings.toml (or run again with --write-settings):"
            ),
            "",
            self.settings_block.rstrip("\n"),
            "",
            self.next_steps.rstrip("\n"),
        ]
        return "\n".join(lines)


def check_name(name: str) -> str:
    """The name of a new source, or ScaffoldError saying what a name must be."""
    if not NAME_PATTERN.fullmatch(name) or len(name) > NAME_MAX:
        raise ScaffoldError(
            f"NAME: got {name!r}, expected a lowercase identifier of at most {NAME_MAX} "
            "characters: a letter, then letters, digits and single underscores between them "
            "(e.g. 'land' or 'land_registry'); it names the module, the source in settings "
            "and its topics"
        )
    if keyword.iskeyword(name):
        raise ScaffoldError(f"NAME: {name!r} is a Python keyword, it cannot name a module")
    return name


def render(template: str, values: dict[str, str]) -> str:
    """A template of bus/tooling/templates with its placeholders filled in."""
    try:
        return Template((TEMPLATES / template).read_text(encoding="utf-8")).substitute(values)
    except KeyError as exc:
        raise ScaffoldError(
            f"{TEMPLATES / template}: unknown placeholder ${{{exc.args[0]}}}; known: "
            f"{sorted(values)}"
        ) from None
    except ValueError as exc:  # a lone `$`: write `$$` for a dollar sign
        raise ScaffoldError(f"{TEMPLATES / template}: {exc} (write $$ for a $)") from None


def new_source(
    root: Path,
    name: str,
    protocol: SourceProtocol,
    *,
    sandbox_url: str,
    configured: Collection[str] = (),
    write_settings: bool = False,
) -> Scaffolded:
    """Write the files of a new source under `root` (see the module doc).

    `sandbox_url` is where the sandbox is served (the source's url is under it); `configured` the
    sources already in the settings. With `write_settings`, the block is appended to
    `root/settings.toml`. Raises ScaffoldError, having written nothing, when the name is not a
    lowercase identifier, is configured, or any of the files exists.
    """
    source = NewSource(check_name(name), protocol)
    settings_file = root / "settings.toml"
    if name in configured or name in _sources_in(settings_file):
        raise ScaffoldError(f"NAME: {name!r} is already a configured source ([sources.{name}])")
    files = source.files()
    _check_targets(root, source, files)
    values = source.placeholders(sandbox_url)
    rendered = {root / file.path: render(file.template, values) for file in files}
    block = render("settings.toml.tmpl", values)
    _write_all(rendered)
    if write_settings:
        _append(settings_file, block)
    return Scaffolded(
        source,
        files,
        block,
        settings_file if write_settings else None,
        render("next-steps.txt.tmpl", values),
    )


def _sources_in(settings_file: Path) -> set[str]:
    if not settings_file.is_file():
        return set()
    try:
        data = tomllib.loads(settings_file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ScaffoldError(f"{settings_file}: not readable TOML ({exc})") from None
    sources = data.get("sources", {})
    return set(sources) if isinstance(sources, dict) else set()


def _check_targets(root: Path, source: NewSource, files: tuple[GeneratedFile, ...]) -> None:
    folders = sorted({str(Path(file.path).parent) for file in files})
    missing = [folder for folder in folders if not (root / folder).is_dir()]
    if missing:
        raise ScaffoldError(f"{root}: not a tthc-bus checkout (no {', '.join(missing)})")
    taken = [file.path for file in files if (root / file.path).exists()]
    if (root / "sandbox" / source.name).exists():
        taken.append(f"sandbox/{source.name}/")
    if taken:
        raise ScaffoldError(
            f"NAME: {source.name!r} is taken: {', '.join(taken)} already "
            f"{'exists' if len(taken) == 1 else 'exist'}; nothing was written"
        )


def _write_all(rendered: dict[Path, str]) -> None:
    """Create every file, or none: what was written is removed again if one cannot be."""
    written: list[Path] = []
    try:
        for path, text in rendered.items():
            with path.open("x", encoding="utf-8") as out:
                written.append(path)
                out.write(text)
    except OSError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        raise ScaffoldError(
            f"cannot write {exc.filename}: {exc.strerror}; nothing was written"
        ) from None


def _append(settings_file: Path, block: str) -> None:
    text = settings_file.read_text(encoding="utf-8") if settings_file.is_file() else ""
    separator = "" if not text else "\n" if text.endswith("\n") else "\n\n"
    with settings_file.open("a", encoding="utf-8") as out:
        out.write(separator + block)
