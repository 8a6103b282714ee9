"""Declarative native -> normalized mappings (TOML), their code lists, and the engine."""

from mappings.engine import Mapping, MappingFileError, load_mapping
from mappings.units import ConvertedUnit, convert_unit

__all__ = ["ConvertedUnit", "Mapping", "MappingFileError", "convert_unit", "load_mapping"]
