"""Blue-collar loans (蓝领贷)."""

from union_pipeline.assetkit.staging import raw_source, staging_asset

loans = staging_asset("loans")

raw_files = [raw_source("loans")]
