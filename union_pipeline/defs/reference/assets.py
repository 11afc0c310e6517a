"""Reference data: the union roster, the yearly targets and the published figures."""

from union_pipeline.assetkit.staging import staging_asset

unions = staging_asset("unions")
targets = staging_asset("targets")
published = staging_asset("published")
