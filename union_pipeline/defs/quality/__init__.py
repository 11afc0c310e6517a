"""Data quality: Great Expectations suites on the warehouse, as asset checks."""
