"""Read models built from the event store (stock levels, lots, movements, KPIs, audit history)."""
