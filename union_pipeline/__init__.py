"""union-pipeline: the data pipeline and KPI warehouse of a district federation of trade unions."""
