"""The shape of the graph: a change to assets, groups, checks, jobs or schedules is a reviewed
diff of tests/snapshots/definitions.json. Rewrite it, after reviewing the change, with
`.venv/bin/python -m tests.test_definitions`: the test itself only compares."""

from __future__ import annotations

import json
from pathlib import Path

from union_pipeline.definitions import defs

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def describe() -> dict:
    d = defs()
    graph = d.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "kinds": sorted(node.kinds),
            "owners": list(node.owners),
            "checks": sorted(c.name for c in node.check_keys),
            "blocking_checks": sorted(
                c.name for c in node.check_keys if graph.get_check_spec(c).blocking
            ),
            "fresh_within_hours": (
                node.freshness_policy.fail_window.to_timedelta().total_seconds() / 3600
                if node.freshness_policy
                else None
            ),
        }
    return {
        "assets": assets,
        "jobs": sorted(j.name for j in d.jobs or []),
        "schedules": {s.name: [s.cron_schedule, s.execution_timezone] for s in d.schedules},
        "sensors": sorted(s.name for s in d.sensors),
    }


def test_definitions_match_snapshot():
    assert describe() == json.loads(SNAPSHOT.read_text())


def test_every_asset_explains_itself():
    graph = defs().resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.group_name and node.group_name != "default", key
        assert node.owners, key
        assert node.kinds, key
        description = node.description or ""
        assert description.strip(), key
        assert any("\u4e00" <= ch <= "\u9fff" for ch in description), f"{key}: no Chinese"


if __name__ == "__main__":
    SNAPSHOT.write_text(json.dumps(describe(), ensure_ascii=False, indent=1) + "\n")
    print(f"rewrote {SNAPSHOT}: review `git diff {SNAPSHOT.relative_to(Path.cwd())}`")
