"""Demo data: the store schema, the deterministic generator and the demo feed."""
