"""Tooling around the core: the command line (the composition root), the local dev stack and
the embedded Kafka launcher. The core (the rest of bus/) never imports this package."""
