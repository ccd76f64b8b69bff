"""``mlpipeline.sweeps``: what a script declares grids, random draws and searches with —
distributions, ``asha``, ``optuna_search`` — and how points are named (``mlpipeline.script.space``,
``mlpipeline.script.optuna_search``)."""
from .script.optuna_search import OptunaSearch, optuna_search  # noqa: F401
from .script.space import (Asha, Distribution, Search, asha, canonical, check_point, choice,  # noqa: F401
                           grid_points, is_point_name, loguniform, metric_value, point_hash, point_of,
                           random_points, randint, search_point_hash, uniform, valid_name)

__all__ = ["Asha", "Distribution", "OptunaSearch", "Search", "asha", "choice", "loguniform", "optuna_search",
           "randint", "uniform"]
