"""The ledger's business rules: aggregates, their events, typed errors and application services.

Imports nothing of this project's other packages; persistence is injected.
"""
