"""Simulated driver licence database (CSDL giấy phép lái xe, the road traffic authority)."""

from sandbox.licence.generator import LicenceGenerator

__all__ = ["LicenceGenerator"]
