"""Every public name of both 1.x generations imports from the original's modules."""
from __future__ import annotations

import importlib

import pytest

# (module, name): the released API (1.1a3.post7 = ml-pipeline 003a5f7) and what c8e2ef6 added.
RELEASED = {
    "mlpipeline.utils": ["ModeKeys", "ExecutionModeKeys", "console_colors", "version_parameters", "Versions",
                         "VersionLog", "set_logger", "log", "add_script_dir_to_PATH", "MetricContainer", "Metric"],
    "mlpipeline.helper": ["Model", "DataLoader"],
    "mlpipeline.global_values": ["MODELS_DIR", "OUTPUT_FILE", "HISTORY_FILE", "TRAINING_HISTORY_LOG_FILE",
                                 "LOG_FILE", "NO_LOG", "EXECUTED_MODELS", "USE_BLACKLIST", "LISTED_MODELS",
                                 "TEST_MODE", "mtime", "version", "train_time", "vless"],
}
README_ERA = {"mlpipeline.utils": ["copy_related_files", "use_mlflow", "log_special_tokens", "_collect_related_files"]}
METHODS = {
    "Versions": ["addV", "getVersion", "rangeOnParameters", "add_version", "get_version"],
    "Metric": ["update", "reset", "reset_epoc", "avg", "avg_epoc", "get_tracking_average", "get_tracking_delta",
               "get_tracking_stdev"],
    "MetricContainer": ["reset", "reset_epoc", "log_metrics", "update", "pop"],
    "Model": ["pre_execution_hook", "train_model", "evaluate_model", "get_current_version",
              "get_trained_step_count", "clean_model_dir", "add_to_summery", "log", "copy_related_files"],
    "DataLoader": ["get_train_input", "get_test_input", "get_dataloader_summery", "get_train_sample_count",
                   "get_test_sample_count", "add_to_summery", "log"],
}
NAMES = [(m, n) for table in (RELEASED, README_ERA) for m, names in table.items() for n in names]


@pytest.mark.parametrize("module, name", NAMES, ids=[f"{m}.{n}" for m, n in NAMES])
def test_name_imports(module, name):
    assert hasattr(importlib.import_module(module), name)


@pytest.mark.parametrize("cls, method", [(c, m) for c, ms in METHODS.items() for m in ms])
def test_method_exists(cls, method):
    module = "mlpipeline.helper" if cls in ("Model", "DataLoader") else "mlpipeline.utils"
    assert callable(getattr(getattr(importlib.import_module(module), cls), method))


@pytest.mark.parametrize("module, name", [("mlpipeline.utils._utils", "MetricContainer"),
                                          ("mlpipeline.helper._helper", "Model")])
def test_the_originals_private_module_paths_import(module, name):
    assert hasattr(importlib.import_module(module), name)
