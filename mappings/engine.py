"""The mapping engine: declarative TOML, native record -> normalized pydantic model.

A mapping file is read and checked once (`load_mapping`, cached) and compiled into a tuple of
steps; `Mapping.apply` is a loop over those steps followed by one pydantic validation. A file
that is wrong fails at load with the file, the key and what was expected; a record that cannot be
mapped fails with `MappingError(native path, value, expected)`, whose message names the path and
the expectation but never the value (it may be a personal id or a name).

File format (see mappings/population.toml for a full example)::

    target = "citizen"                      # the schema: a key of TARGETS
    description = "..."

    [fields.<target field>]
    path = "HoVaTen.Ho"                     # dotted native path
    fallbacks = ["..."]                     # tried in order when `path` is empty
    transform = "name"                      # text (default), name, join, date, code, address
    required = true                         # default false
    ...                                     # the transform's own arguments

    [fields.<field>]                        # join: reads several paths
    transform = "join"
    paths = ["HoVaTen.Ho", "HoVaTen.ChuDem", "HoVaTen.Ten"]

    [fields.<field>]                        # address: reads named values under `path`
    transform = "address"
    path = "ThuongTru"
    inputs = { detail = "ChiTiet", province = "MaTinh", commune = "MaDonViHanhChinh" }

    [fields.<field>]                        # a nested model, its fields relative to `path`
    model = "relative"
    path = "Cha"
    shape = "person"                        # fields from [shapes.person], or a [fields...] table

    [shapes.person.<field>]                 # reusable sets of nested fields
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Callable
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bus.errors import BusError, MappingError
from bus.schemas.citizen import Address, Citizen, Relative
from mappings.transforms import (
    TRANSFORMS,
    Converter,
    TransformArgumentError,
    TransformError,
    build_converter,
    is_empty,
)

MAPPINGS_DIR = Path(__file__).parent

TARGETS: dict[str, type[BaseModel]] = {
    "citizen": Citizen,
    "address": Address,
    "relative": Relative,
}


def resolve_target(name: Any) -> type[BaseModel] | None:
    """A target schema: a short name of TARGETS, or 'module:Class' naming a pydantic model (so a
    database's schemas live beside it and the engine need not know them)."""
    if not isinstance(name, str):
        return None
    if name in TARGETS:
        return TARGETS[name]
    module_name, _, class_name = name.partition(":")
    if not module_name or not class_name:
        return None
    try:
        model = getattr(importlib.import_module(module_name), class_name, None)
    except ImportError:
        return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


_STEP_KEYS = {"path", "fallbacks", "paths", "inputs", "transform", "required"}
_READ_KEYS = {"one": {"path", "fallbacks"}, "many": {"paths"}, "named": {"path", "inputs"}}
_FILE_KEYS = {"target", "description", "source", "fields", "shapes"}

Reader = Callable[[Any], Any]


class MappingFileError(BusError):
    """A mapping file is wrong: names the file, the key and what was expected."""

    def __init__(self, file: Path | str, key: str, expected: str) -> None:
        super().__init__(f"{file}: {key}: expected {expected}")
        self.file = str(file)
        self.key = key
        self.expected = expected


class WholeRecord:
    """Stands for the value in errors about the record as a whole (e.g. fields disagreeing)."""

    def __repr__(self) -> str:
        return "the whole record"


WHOLE_RECORD = WholeRecord()


def _getter(path: str) -> Callable[[Any], Any]:
    """A function reading a dotted path from nested dicts; None when any step is missing."""
    keys = tuple(path.split("."))
    if len(keys) == 1:
        (only,) = keys

        def get_one(record: Any) -> Any:
            try:
                return record.get(only)
            except AttributeError:  # a scalar or list where a table was expected
                return None

        return get_one

    def get(record: Any) -> Any:
        for key in keys:
            try:
                record = record.get(key)
            except AttributeError:
                return None
        return record

    return get


@dataclass(frozen=True, slots=True)
class _Step:
    target: str
    read: Reader  # the native value
    convert: Converter
    required: bool
    label: str  # the native path(s) read, for errors
    where: Callable[[Any], str] | None = None  # the path actually read, when fallbacks decide

    def path_read(self, record: Any) -> str:
        return self.label if self.where is None else self.where(record)


class _Compiler:
    """Turns the `[fields]` tables of one file into steps, checking every key on the way."""

    def __init__(self, file: Path, shapes: dict[str, Any]) -> None:
        self.file = file
        self.shapes = shapes
        self.native_paths: dict[tuple[str, ...], str] = {}

    def fail(self, key: str, expected: str) -> MappingFileError:
        return MappingFileError(self.file, key, expected)

    def path(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not all(value.split(".")):
            raise self.fail(key, f"a dotted native path like 'HoVaTen.Ho', got {value!r}")
        return value

    def paths(self, key: str, value: Any) -> list[str]:
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"a non-empty list of native paths, got {value!r}")
        return [self.path(f"{key}[{i}]", v) for i, v in enumerate(value)]

    def fields(
        self, key: str, model: type[BaseModel], table: Any, prefix: str, loc: tuple[str, ...]
    ) -> tuple[_Step, ...]:
        if not isinstance(table, dict) or not table:
            raise self.fail(key, f"a table of {model.__name__} fields")
        steps = []
        for name, spec in table.items():
            if name not in model.model_fields:
                raise self.fail(
                    f"{key}.{name}", f"a field of {model.__name__}: {list(model.model_fields)}"
                )
            if not isinstance(spec, dict):
                raise self.fail(f"{key}.{name}", "a table with path and transform")
            steps.append(self.step(f"{key}.{name}", name, spec, prefix, (*loc, name)))
        missing = [n for n, f in model.model_fields.items() if f.is_required() and n not in table]
        if missing:
            raise self.fail(
                key, f"a mapping for every required field of {model.__name__}: {missing}"
            )
        return tuple(steps)

    def step(
        self, key: str, name: str, spec: dict[str, Any], prefix: str, loc: tuple[str, ...]
    ) -> _Step:
        required = spec.get("required", False)
        if not isinstance(required, bool):
            raise self.fail(f"{key}.required", f"true or false, got {required!r}")
        if "model" in spec:
            return self.nested(key, name, spec, prefix=prefix, loc=loc, required=required)
        transform_name = spec.get("transform", "text")
        transform = TRANSFORMS.get(transform_name)
        if transform is None:
            raise self.fail(
                f"{key}.transform", f"one of {sorted(TRANSFORMS)}, got {transform_name!r}"
            )
        args = {k: v for k, v in spec.items() if k not in _STEP_KEYS}
        misplaced = (
            set(spec) & (_STEP_KEYS - {"transform", "required"}) - _READ_KEYS[transform.inputs]
        )
        if misplaced:
            allowed = sorted(_READ_KEYS[transform.inputs])
            raise self.fail(
                f"{key}.{sorted(misplaced)[0]}", f"{allowed} for transform {transform_name!r}"
            )
        try:
            convert = build_converter(transform, args)
        except TransformArgumentError as exc:
            raise self.fail(f"{key}.{exc.key}", exc.expected) from None
        where = None
        if transform.inputs == "one":
            read, label, where = self.read_one(key, spec, prefix)
        elif transform.inputs == "many":
            read, label = self.read_many(key, spec, prefix)
        else:
            read, label = self.read_named(key, spec, prefix, transform.input_names)
        self.native_paths[loc] = label
        return _Step(name, read, convert, required, label, where)

    def read_one(
        self, key: str, spec: dict[str, Any], prefix: str
    ) -> tuple[Reader, str, Callable[[Any], str] | None]:
        if "path" not in spec:
            raise self.fail(f"{key}.path", "a native path (this transform reads one value)")
        paths = [self.path(f"{key}.path", spec["path"])]
        paths += self.paths(f"{key}.fallbacks", spec["fallbacks"]) if "fallbacks" in spec else []
        candidates = tuple((_getter(p), prefix + p) for p in paths)
        first_get, first_label = candidates[0]
        if len(candidates) == 1:
            return first_get, first_label, None

        def read(record: Any) -> Any:
            for get, _ in candidates:
                value = get(record)
                if not is_empty(value):
                    return value
            return None

        def where(record: Any) -> str:
            return next(
                (label for get, label in candidates if not is_empty(get(record))), first_label
            )

        return read, first_label, where

    def read_many(self, key: str, spec: dict[str, Any], prefix: str) -> tuple[Reader, str]:
        if "paths" not in spec:
            raise self.fail(f"{key}.paths", "a list of native paths (this transform joins them)")
        paths = self.paths(f"{key}.paths", spec["paths"])
        getters = tuple(_getter(p) for p in paths)
        label = "+".join(prefix + p for p in paths)
        return (lambda record: [get(record) for get in getters]), label

    def read_named(
        self, key: str, spec: dict[str, Any], prefix: str, names: tuple[str, ...]
    ) -> tuple[Reader, str]:
        inputs = spec.get("inputs")
        if not isinstance(inputs, dict) or not inputs:
            raise self.fail(
                f"{key}.inputs", f"a table naming native paths for some of {list(names)}"
            )
        base = self.path(f"{key}.path", spec["path"]) if "path" in spec else ""
        getters = []
        for input_name, sub in inputs.items():
            if input_name not in names:
                raise self.fail(f"{key}.inputs.{input_name}", f"one of {list(names)}")
            getters.append((input_name, _getter(self.path(f"{key}.inputs.{input_name}", sub))))
        label = prefix + (base or "+".join(inputs.values()))
        get_base = _getter(base) if base else None

        def read(record: Any) -> dict[str, Any]:
            # The table under `path` is looked up once, its named values in it.
            table = record if get_base is None else get_base(record)
            return {input_name: get(table) for input_name, get in getters}

        return read, label

    def nested(
        self,
        key: str,
        name: str,
        spec: dict[str, Any],
        *,
        prefix: str,
        loc: tuple[str, ...],
        required: bool,
    ) -> _Step:
        model = resolve_target(spec["model"])
        if model is None:
            raise self.fail(
                f"{key}.model", f"'module:Class' or one of {sorted(TARGETS)}, got {spec['model']!r}"
            )
        path = self.path(f"{key}.path", spec.get("path"))
        if "shape" in spec:
            if spec["shape"] not in self.shapes:
                raise self.fail(f"{key}.shape", f"one of the [shapes]: {sorted(self.shapes)}")
            table, table_key = self.shapes[spec["shape"]], f"shapes.{spec['shape']}"
        else:
            table, table_key = spec.get("fields"), f"{key}.fields"
        unknown = set(spec) - {"model", "path", "shape", "fields", "required"}
        if unknown:
            raise self.fail(f"{key}.{sorted(unknown)[0]}", "model, path, shape or fields")
        steps = self.fields(table_key, model, table, f"{prefix}{path}.", loc)
        get, label = _getter(path), prefix + path
        self.native_paths[loc] = label
        return _Step(name, get, _nested_builder(steps), required, label)


def _run(steps: tuple[_Step, ...], record: Any) -> dict[str, Any]:
    """Apply compiled steps to one native record: the hot loop."""
    out: dict[str, Any] = {}
    for step in steps:
        value = step.read(record)
        if value is not None and not is_empty(value):
            try:
                value = step.convert(value)
            except TransformError as exc:
                raise MappingError(step.path_read(record), value, exc.expected) from None
            if value is not None:
                out[step.target] = value
                continue
        if step.required:
            raise MappingError(step.path_read(record), value, "a value (the field is required)")
    return out


def _nested_builder(steps: tuple[_Step, ...]) -> Converter:
    def build(record: Any) -> dict[str, Any] | None:
        return _run(steps, record) or None

    return build


class Mapping:
    """A compiled mapping file: `apply(native)` returns the target model or raises MappingError."""

    def __init__(self, name: str, file: Path) -> None:
        try:
            with file.open("rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise MappingFileError(file, "(file)", f"a readable TOML file: {exc}") from None
        unknown = set(data) - _FILE_KEYS
        if unknown:
            raise MappingFileError(file, sorted(unknown)[0], f"only the keys {sorted(_FILE_KEYS)}")
        target = data.get("target")
        model = resolve_target(target)
        if model is None:
            raise MappingFileError(
                file, "target", f"'module:Class' or one of {sorted(TARGETS)}, got {target!r}"
            )
        shapes = data.get("shapes", {})
        if not isinstance(shapes, dict):
            raise MappingFileError(file, "shapes", "a table of named field tables")
        compiler = _Compiler(file, shapes)
        self.name = name
        self.file = file
        self.target = str(target)
        self.model = model
        self.steps = compiler.fields("fields", self.model, data.get("fields"), "", ())
        self.native_paths = compiler.native_paths

    def apply(self, native: AbcMapping[str, Any]) -> BaseModel:
        values = _run(self.steps, native)
        try:
            return self.model.model_validate(values)
        except ValidationError as exc:
            raise self._validation_error(exc) from None

    def _validation_error(self, exc: ValidationError) -> MappingError:
        error = exc.errors(include_url=False)[0]
        loc = tuple(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if not loc:
            return MappingError(self.target, WHOLE_RECORD, message)
        native = next(
            (
                self.native_paths[loc[:n]]
                for n in range(len(loc), 0, -1)
                if loc[:n] in self.native_paths
            ),
            "?",
        )
        return MappingError(f"{'.'.join(loc)} (from {native})", error.get("input"), message)

    def __repr__(self) -> str:
        return f"Mapping({self.name!r}, target={self.target!r}, steps={len(self.steps)})"


@cache
def load_mapping(name: str) -> Mapping:
    """The compiled mapping `mappings/<name>.toml` (loaded and checked once per process)."""
    file = MAPPINGS_DIR / f"{name}.toml"
    if not file.is_file():
        known = sorted(p.stem for p in MAPPINGS_DIR.glob("*.toml"))
        raise MappingFileError(file, "(file)", f"an existing mapping; known: {known}")
    return Mapping(name, file)
