"""Composition root: settings, wiring of the store and applications, the `ledger` CLI."""
