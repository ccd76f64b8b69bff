"""One version from its spec, wherever it executes (a child process, the runner's own in test mode): a plain
script's argument line, a ``Command``'s parameters as arguments, else a MODEL's hooks (``execute``)."""
from __future__ import annotations

from typing import Any, Dict, Optional

from .execute import VersionResult, run_version
from .plain import run_plain, version_env


def run_spec(spec: Dict[str, Any], model_dir: str, exec_mode: str, run_dir: Optional[str] = None,
             run_id: Optional[int] = None, load: Any = None) -> VersionResult:
    """Run the version a spec (``lifecycle.VersionSpec.to_json()``, read as plain data) names, wherever it
    executes: a plain script's argument line, a ``Command``'s parameters as arguments, else a MODEL's hooks.
    ``load`` imports a script (``loading.load_module``, or an executor's cache of it)."""
    from .loading import get_model, load_module
    from .specs import version_for

    with version_env(run_id, model_dir, spec["version"], exec_mode):  # a MODEL's too: test_mode() there
        if spec.get("argv") is not None:
            return run_plain(spec["script"], list(spec["argv"]), spec["version"], model_dir, exec_mode)
        module = (load or load_module)(spec["script"])
        model = get_model(module, spec["script"], only=spec["version"])
        version = version_for(model, spec["version"], spec["params"])
        if getattr(model, "_mlp_command", False):
            return run_plain(model.script, model.argv(version), spec["version"], model_dir, exec_mode)
        return run_version(model, version, spec["script"], model_dir, exec_mode,
                           source=getattr(module, "__mlpipeline_source__", None), run_dir=run_dir)
