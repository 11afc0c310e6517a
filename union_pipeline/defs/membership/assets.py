"""Membership: the real-name member roster."""

from union_pipeline.assetkit.staging import raw_source, staging_asset

members = staging_asset("members")

raw_files = [raw_source("members")]
