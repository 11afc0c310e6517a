"""The demo district: a generated raw drop that reproduces the published 2019 figures.

    from union_pipeline.demo import generate
    summary = generate(Path("data/raw"), scale=1, seed=20191231)

or `python -m union_pipeline.demo --out data/raw --scale 1 --seed 20191231`.
"""

from union_pipeline.demo.generator import CALIBRATION, DEFAULT_SEED, FOLDERS, generate

__all__ = ["CALIBRATION", "DEFAULT_SEED", "FOLDERS", "generate"]
