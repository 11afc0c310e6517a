"""Blue-collar loans (蓝领贷)."""

from union_pipeline.assetkit.staging import staging_asset

loans = staging_asset("loans")
