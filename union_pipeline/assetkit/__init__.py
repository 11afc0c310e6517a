"""Shared Dagster machinery: the warehouse resource and the metadata every asset reports."""
