"""Operating the bus: process status on tthc.status (and, later, health and metrics)."""
