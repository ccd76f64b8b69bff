"""Searches as the runner drives them: ``Searches`` (``driver``), one ``SearchState`` each
(``state``), ASHA (``asha``), and the search child's pipes (``pipe``)."""
from .asha import AshaRungs, _percentile
from .driver import SearchFailure, Searches

__all__ = ["AshaRungs", "SearchFailure", "Searches", "_percentile"]
