"""The audit trail: events on tthc.audit (recorder), and the hash-chained ledger that keeps them."""
