"""From a ``VersionSpec`` back to the version object a script's hooks receive.

A spec carries a version's parameters as plain data. A version the script
declares keeps its own objects (its dataloader, say) for every parameter the
spec leaves as declared; a parameter the spec changes, or a version the script
does not declare at all (a search's point, built on the search's template;
else on the first declared version), takes the spec's value.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

from .versions import ordered, version_params, version_parameters


def version_for(model: Any, name: str, params: Mapping[str, Any]) -> Any:
    """The version ``name`` of ``model`` with ``params`` applied (a copy; the
    script's own declarations are left as they are)."""
    from .loading import declared_version

    versions = model.versions
    own = declared_version(versions, name)
    searches = getattr(versions, "searches", {})
    if own is None and name.rsplit("-", 1)[0] in searches:  # a search's point: built from the search's template
        base = versions.search_version(name, {})
    else:
        base = own if own is not None else ordered(versions)[0]
    version = copy.copy(base)
    plain = version_params(base)
    for key, value in params.items():
        if key != version_parameters.NAME and plain.get(key) != value:
            version[key] = value
    if own is None:  # a new version takes its name; a declared one keeps its own form
        version[version_parameters.NAME] = name
    return version
