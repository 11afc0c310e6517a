"""The demo district: a generated raw drop that reproduces the published 2019 figures;
and a demo city of such districts.

    from union_demo import generate, generate_city
    summary = generate(Path("data/raw"), scale=1, seed=20191231)
    summary = generate_city(Path("data/raw"), districts=10, scale=1)

or `python -m union_demo --out data/raw --scale 1 --seed 20191231 [--districts 10]`.
"""

from union_demo.generator import (
    CALIBRATION,
    DEFAULT_SEED,
    FOLDERS,
    generate,
    generate_city,
)

__all__ = ["CALIBRATION", "DEFAULT_SEED", "FOLDERS", "generate", "generate_city"]
