"""union-pipeline's Dagster definitions: the defs/ folder plus project-wide policy."""

from pathlib import Path

import dagster as dg

from union_pipeline.assetkit.resources import WarehouseResource


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(
            resources={"warehouse": WarehouseResource()},
            # A process per step costs ~2.5 s on 2 cores, more than a district's work;
            # DuckDB takes one writer anyway.
            executor=dg.in_process_executor,
        ),
    )
