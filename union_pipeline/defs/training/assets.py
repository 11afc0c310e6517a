"""Training and skills contests."""

from union_pipeline.assetkit.staging import raw_source, staging_asset

training = staging_asset("training")

raw_files = [raw_source("training")]
