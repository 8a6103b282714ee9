"""Simulated electronic civil status database (CSDL hộ tịch điện tử, Ministry of Justice)."""

from sandbox.civil.generator import CivilRegister

__all__ = ["CivilRegister"]
