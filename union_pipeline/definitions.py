"""union-pipeline's Dagster definitions: the defs/ folder plus project-wide policy."""

import warnings
from datetime import timedelta
from pathlib import Path

import dagster as dg

from union_pipeline.assetkit.resources import WarehouseResource

# The nightly refresh runs at 02:00 Asia/Shanghai; a mart or report not refreshed for 36
# hours has missed a night and a retry.
FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=36), warn_window=timedelta(hours=26)
)
SERVED_TO_READERS = dg.AssetSelection.key_prefixes(["marts"], ["reports"])


@dg.definitions
def defs() -> dg.Definitions:
    merged = dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(
            resources={"warehouse": WarehouseResource.from_env()},
            # A process per step costs ~2.5 s on 2 cores, more than a district's work, and
            # DuckDB already uses both cores within a step.
            executor=dg.in_process_executor,
        ),
    )
    # the documented way to apply a policy over a selection; it is marked "preview"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return merged.map_resolved_asset_specs(
            func=lambda spec: dg.apply_freshness_policy(spec, FRESHNESS),
            selection=SERVED_TO_READERS,
        )
