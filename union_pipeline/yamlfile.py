"""YAML of the declarative inputs (assets/), parsed by libyaml where PyYAML has it: every
process reads them, and the pure-Python parser takes ten times as long (all of assets/:
0.35 s against 0.04 s)."""

from __future__ import annotations

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(stream):
    """`yaml.safe_load` of a text or an open file, with the faster parser."""
    return yaml.load(stream, Loader=_LOADER)  # noqa: S506 - a safe loader
