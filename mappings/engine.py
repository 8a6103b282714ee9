"""The mapping engine: declarative TOML, native record -> normalized pydantic model.

A mapping file is read and checked once (`load_mapping`, cached) and compiled into a tuple of
steps; `Mapping.apply` is a loop over those steps followed by one pydantic validation. A file
that is wrong fails at load with the file, the key and what was expected; a record that cannot be
mapped fails with `MappingError(native path, value, expected)`, whose message names the path and
the expectation but never the value (it may be a personal id or a name).

File format (see mappings/population.toml for a full example)::

    target = "citizen"                      # the schema: a registered target (below)
    description = "..."

    [fields.<target field>]
    path = "HoVaTen.Ho"                     # dotted native path
    fallbacks = ["..."]                     # tried in order when `path` is empty
    transform = "name"                      # text (default), name, join, date, code, bool,
                                            # number, address
    required = true                         # default false
    ...                                     # the transform's own arguments

    [fields.<field>]                        # bool: 1/0, "1"/"0", true/false, Y/N, yes/no
    path = "IS_MAIN"                        # (case-insensitive), or the file's own lists:
    transform = "bool"
    true = ["C", "Có"]                      # optional, replaces the default true spellings
    false = ["K", "Không"]                  # optional, likewise

    [fields.<field>]                        # number: int, or float when there is a fraction
    path = "CAPITAL_AMOUNT"
    transform = "number"
    thousands = "."                         # optional grouping mark: "1.500.000.000"
    integer = true                          # optional: refuse a fraction that is not zero

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

    [fields.<list field>]                   # a list of nested models
    model = "representative"
    path = "DAI_DIEN"                       # a list of tables (a single table is a list of one)
    many = true
    shape = "person"

    [fields.<list field>]                   # a list of values, each through the transform
    path = "NGANH_NGHE"
    transform = "code"
    list = "vsic-2018"
    many = true

    [shapes.person.<field>]                 # reusable sets of nested fields

Empty elements of a native list are left out. An element that fails is named by its index in the
native list: `DAI_DIEN[2].HO_TEN`, and in validation errors `representatives[2].full_name (from
DAI_DIEN[2].HO_TEN)`.

A target or nested model is a name in a registry of targets (`TARGETS`, extended with
`register_target`, or the `targets` given to `Mapping`), looked up when a file is loaded, or
'module:Class'; the engine imports no other source's schemas.
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Callable
from collections.abc import Mapping as AbcMapping
from collections.abc import Sequence as AbcSequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

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

# The models a mapping file may name (`target = ...`, `model = ...`), looked up when a file is
# loaded. Schemas of other sources are added by whoever loads their mappings: `register_target`.
TARGETS: dict[str, type[BaseModel]] = {
    "citizen": Citizen,
    "address": Address,
    "relative": Relative,
}
Targets = AbcMapping[str, type[BaseModel]]


def register_target(name: str, model: type[BaseModel]) -> None:
    """Let mapping files name `model` as `name`; registering it again under that name is a no-op.

    Another model under a name already taken is refused: files loaded before would silently
    disagree with files loaded after.
    """
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"a target name is a non-empty string without ':', got {name!r}")
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"target {name!r}: expected a pydantic model class, got {model!r}")
    known = TARGETS.get(name)
    if known is not None and known is not model:
        raise ValueError(f"target {name!r} is already {known.__module__}.{known.__qualname__}")
    TARGETS[name] = model


def resolve_target(name: Any, targets: Targets | None = None) -> type[BaseModel] | None:
    """A target schema: a name in `targets` (default TARGETS), or 'module:Class' naming a pydantic
    model (so a database's schemas live beside it and the engine need not know them)."""
    if not isinstance(name, str):
        return None
    known = (TARGETS if targets is None else targets).get(name)
    if known is not None:
        return known
    module_name, _, class_name = name.partition(":")
    if not module_name or not class_name:
        return None
    try:
        model = getattr(importlib.import_module(module_name), class_name, None)
    except ImportError:
        return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


_STEP_KEYS = {"path", "fallbacks", "paths", "inputs", "transform", "required", "many"}
_NESTED_KEYS = {"model", "path", "shape", "fields", "required", "many"}
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


def _indexed(path: str, label: str, index: int) -> str:
    """`path` (one or several joined by +) as read in element `index` of the list at `label`."""
    head, element = label + ".", f"{label}[{index}]"
    parts = []
    for part in path.split("+"):
        if part == label:
            parts.append(element)
        elif part.startswith(head):
            parts.append(f"{element}.{part[len(head) :]}")
        else:
            parts.append(part)
    return "+".join(parts)


@dataclass(frozen=True, slots=True)
class _ListConverter:
    convert: Converter
    kept: Callable[[Any], list[int]]  # the native indices of the elements that were kept


def _list_of(convert: Converter, label: str, tables: bool) -> _ListConverter:
    """Converters for a native list whose elements each go through `convert`.

    The native value may be a list or one element (a list of one). Empty elements, and elements
    that convert to nothing, are left out; `kept` says which native indices remain, so that a
    validation error found later can still name the native element.
    """
    expected = "a table or a list of tables" if tables else "a value or a list of values"
    item_expected = "a table" if tables else "a single value, not a table or a list"

    def convert_items(value: Any, kept: list[int] | None) -> list[Any]:
        if isinstance(value, list | tuple):
            items: Any = value
        elif isinstance(value, dict) == tables:
            items = (value,)
        else:
            raise TransformError(expected)
        out = []
        for index, item in enumerate(items):
            if is_empty(item):
                continue
            if isinstance(item, dict) != tables or isinstance(item, list | tuple):
                raise MappingError(f"{label}[{index}]", item, item_expected)
            try:
                converted = convert(item)
            except TransformError as exc:
                raise MappingError(f"{label}[{index}]", item, exc.expected) from None
            except MappingError as exc:
                path = _indexed(exc.path, label, index)
                raise MappingError(path, exc.value, exc.expected) from None
            if converted is not None:
                out.append(converted)
                if kept is not None:
                    kept.append(index)
        return out

    def convert_list(value: Any) -> list[Any] | None:
        return convert_items(value, None) or None

    def kept(value: Any) -> list[int]:
        indices: list[int] = []
        convert_items(value, indices)
        return indices

    return _ListConverter(convert_list, kept)


def _is_list_field(model: type[BaseModel], name: str) -> bool:
    """Whether the model's field holds a list (also `list[X] | None`)."""
    annotation = model.model_fields[name].annotation
    union = get_origin(annotation) in (Union, UnionType)
    options = get_args(annotation) if union else (annotation,)
    kinds = [get_origin(option) or option for option in options if option is not type(None)]
    return bool(kinds) and all(
        isinstance(kind, type)
        and issubclass(kind, list | tuple | set | frozenset | AbcSequence)
        and not issubclass(kind, str | bytes)
        for kind in kinds
    )


class _Compiler:
    """Turns the `[fields]` tables of one file into steps, checking every key on the way."""

    def __init__(self, file: Path, shapes: dict[str, Any], targets: Targets) -> None:
        self.file = file
        self.shapes = shapes
        self.targets = targets
        self.native_paths: dict[tuple[str, ...], str] = {}
        # For naming list elements in validation errors: how each nested or list value is read
        # from its enclosing table, and which native elements each list kept.
        self.readers: dict[tuple[str, ...], Reader] = {}
        self.lists: dict[tuple[str, ...], Callable[[Any], list[int]]] = {}

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
            steps.append(self.step(f"{key}.{name}", model, name, spec, prefix, (*loc, name)))
        missing = [n for n, f in model.model_fields.items() if f.is_required() and n not in table]
        if missing:
            raise self.fail(
                key, f"a mapping for every required field of {model.__name__}: {missing}"
            )
        return tuple(steps)

    def many(self, key: str, model: type[BaseModel], name: str, spec: dict[str, Any]) -> bool:
        many = spec.get("many", False)
        if not isinstance(many, bool):
            raise self.fail(f"{key}.many", f"true or false, got {many!r}")
        is_list = _is_list_field(model, name)
        if many and not is_list:
            raise self.fail(f"{key}.many", f"a list field: {model.__name__}.{name} is not a list")
        if is_list and not many:
            raise self.fail(f"{key}.many", f"true: {model.__name__}.{name} is a list")
        return many

    def step(
        self,
        key: str,
        model: type[BaseModel],
        name: str,
        spec: dict[str, Any],
        prefix: str,
        loc: tuple[str, ...],
    ) -> _Step:
        required = spec.get("required", False)
        if not isinstance(required, bool):
            raise self.fail(f"{key}.required", f"true or false, got {required!r}")
        many = self.many(key, model, name, spec)
        if "model" in spec:
            return self.nested(
                key, name, spec, prefix=prefix, loc=loc, required=required, many=many
            )
        transform_name = spec.get("transform", "text")
        transform = TRANSFORMS.get(transform_name)
        if transform is None:
            raise self.fail(
                f"{key}.transform", f"one of {sorted(TRANSFORMS)}, got {transform_name!r}"
            )
        args = {k: v for k, v in spec.items() if k not in _STEP_KEYS}
        misplaced = (
            set(spec)
            & (_STEP_KEYS - {"transform", "required", "many"}) - _READ_KEYS[transform.inputs]
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
        if many and transform.inputs != "one":
            raise self.fail(f"{key}.many", f"a transform reading one value, not {transform_name!r}")
        where = None
        if transform.inputs == "one":
            read, label, where = self.read_one(key, spec, prefix)
        elif transform.inputs == "many":
            read, label = self.read_many(key, spec, prefix)
        else:
            read, label = self.read_named(key, spec, prefix, transform.input_names)
        self.native_paths[loc] = label
        if many:
            each = _list_of(convert, label, tables=False)
            convert = each.convert
            self.readers[loc], self.lists[loc] = read, each.kept
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
        many: bool,
    ) -> _Step:
        model = resolve_target(spec["model"], self.targets)
        if model is None:
            known = sorted(self.targets)
            raise self.fail(
                f"{key}.model", f"'module:Class' or one of {known}, got {spec['model']!r}"
            )
        path = self.path(f"{key}.path", spec.get("path"))
        if "shape" in spec:
            if spec["shape"] not in self.shapes:
                raise self.fail(f"{key}.shape", f"one of the [shapes]: {sorted(self.shapes)}")
            table, table_key = self.shapes[spec["shape"]], f"shapes.{spec['shape']}"
        else:
            table, table_key = spec.get("fields"), f"{key}.fields"
        unknown = set(spec) - _NESTED_KEYS
        if unknown:
            raise self.fail(f"{key}.{sorted(unknown)[0]}", f"one of {sorted(_NESTED_KEYS)}")
        steps = self.fields(table_key, model, table, f"{prefix}{path}.", loc)
        get, label = _getter(path), prefix + path
        self.native_paths[loc] = label
        self.readers[loc] = get
        convert = _nested_builder(steps)
        if many:
            each = _list_of(convert, label, tables=True)
            convert, self.lists[loc] = each.convert, each.kept
        return _Step(name, get, convert, required, label)


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

    def __init__(self, name: str, file: Path, targets: Targets | None = None) -> None:
        targets = TARGETS if targets is None else targets
        try:
            with file.open("rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise MappingFileError(file, "(file)", f"a readable TOML file: {exc}") from None
        unknown = set(data) - _FILE_KEYS
        if unknown:
            raise MappingFileError(file, sorted(unknown)[0], f"only the keys {sorted(_FILE_KEYS)}")
        target = data.get("target")
        model = resolve_target(target, targets)
        if model is None:
            raise MappingFileError(
                file, "target", f"'module:Class' or one of {sorted(targets)}, got {target!r}"
            )
        shapes = data.get("shapes", {})
        if not isinstance(shapes, dict):
            raise MappingFileError(file, "shapes", "a table of named field tables")
        compiler = _Compiler(file, shapes, targets)
        self.name = name
        self.file = file
        self.target = str(target)
        self.model = model
        self.steps = compiler.fields("fields", self.model, data.get("fields"), "", ())
        self.native_paths = compiler.native_paths
        self._readers = compiler.readers
        self._lists = compiler.lists

    def apply(self, native: AbcMapping[str, Any]) -> BaseModel:
        values = _run(self.steps, native)
        try:
            return self.model.model_validate(values)
        except ValidationError as exc:
            raise self._validation_error(exc, native) from None

    def _validation_error(self, exc: ValidationError, native: Any) -> MappingError:
        error = exc.errors(include_url=False)[0]
        loc = error["loc"]
        message = error["msg"].removeprefix("Value error, ")
        if not loc:
            return MappingError(self.target, WHOLE_RECORD, message)
        names = tuple(str(part) for part in loc if not isinstance(part, int))
        native_path = next(
            (
                self.native_paths[names[:n]]
                for n in range(len(names), 0, -1)
                if names[:n] in self.native_paths
            ),
            "?",
        )
        for label, index in reversed(self._list_indices(native, loc)):
            native_path = _indexed(native_path, label, index)
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        return MappingError(f"{where} (from {native_path})", error.get("input"), message)

    def _list_indices(self, native: Any, loc: tuple[int | str, ...]) -> list[tuple[str, int]]:
        """For each list index in a validation error's `loc`: the list's native path and index.

        On the error path only: the native record is read again to learn which native element
        an index of the mapped list came from (empty elements were left out).
        """
        found: list[tuple[str, int]] = []
        names: tuple[str, ...] = ()
        record = native
        for part in loc:
            if not isinstance(part, int):
                names = (*names, part)
                read = self._readers.get(names)
                record = None if read is None or record is None else read(record)
                continue
            kept = self._lists.get(names)
            if kept is None or record is None:
                break
            indices = kept(record)
            index = indices[part] if part < len(indices) else part
            found.append((self.native_paths[names], index))
            items = record if isinstance(record, list | tuple) else (record,)
            record = items[index] if index < len(items) else None
        return found

    def __repr__(self) -> str:
        return f"Mapping({self.name!r}, target={self.target!r}, steps={len(self.steps)})"


@cache
def load_mapping(name: str) -> Mapping:
    """The compiled mapping `mappings/<name>.toml` (loaded and checked once per process).

    Its target is looked up in `TARGETS` now: register a target before the first load.
    """
    file = MAPPINGS_DIR / f"{name}.toml"
    if not file.is_file():
        known = sorted(p.stem for p in MAPPINGS_DIR.glob("*.toml"))
        raise MappingFileError(file, "(file)", f"an existing mapping; known: {known}")
    return Mapping(name, file)
