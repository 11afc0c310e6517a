"""Everything Dagster loads, one folder per domain (group)."""
