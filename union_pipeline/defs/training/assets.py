"""Training and skills contests."""

from union_pipeline.assetkit.staging import staging_asset

training = staging_asset("training")
