"""Membership: the real-name member roster."""

from union_pipeline.assetkit.staging import staging_asset

members = staging_asset("members")
