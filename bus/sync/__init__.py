"""Subscriptions: change events of the sync streams delivered to sinks, in order per entity.

- `sinks`: where an event goes (a webhook, an update of another national database) and how a
  failure is classified (retry, or dead-letter at once).
- `retry`: the jittered exponential backoff and the retry budget around one delivery.
- `deadletter`: the records of `tthc.dlq.<subscription>` (headers in, dead letters out).
- `control`: pause, resume and reset commands on the compacted `tthc.sync.control`.
- `status`: the subscription's own state on `tthc.status`, and positions and lag for the CLI.
- `subscription`: the consumer of one subscription, and `SubscriptionRunner`, the host a
  worker runs.
- `replay`: re-delivery of dead letters (`tthc-bus dlq replay`).

This package is core: it imports no adapter. An update sink takes any `Updater` (an adapter
satisfies it); bus/tooling builds the sinks from the settings and the adapter registry.
"""
