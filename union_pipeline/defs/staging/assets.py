"""The sources: their raw folders, observed, and their staging tables, validated, typed and
PII-free, with the quarantine of every row held back. One step observes the folders, one
stages the sources (each only when selected or changed); the domains are their groups."""

from union_pipeline.assetkit.staging import raw_sources, staging_multi_asset
from union_pipeline.defs.quality import assets as quality

raw_files = raw_sources()
staging = staging_multi_asset([quality.quarantine_out()], quality.quarantine)
