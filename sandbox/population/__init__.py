"""Simulated national population database (CSDLQG về dân cư, Ministry of Public Security)."""

from sandbox.population.generator import PopulationGenerator

__all__ = ["PopulationGenerator"]
