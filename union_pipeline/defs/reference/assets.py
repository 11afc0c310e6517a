"""Reference data: the union roster, the yearly targets and the published figures."""

from union_pipeline.assetkit.staging import raw_source, staging_asset

unions = staging_asset("unions")
targets = staging_asset("targets")
published = staging_asset("published")

raw_files = [raw_source("unions"), raw_source("targets"), raw_source("published")]
