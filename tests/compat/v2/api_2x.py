"""A 2.0a1 … 2.0a7.post1 script's view of the API, outside a run: the names it imports, Versions,
filter_versions, MetricContainer's "epoch" spelling, DataLoaderCallableWrapper, the mode keys.
Runs under the released 2.0a7.post1 and under this project."""
from _observe import attempt, done, record

from mlpipeline import MetricContainer, Versions, iterator  # noqa: F401
from mlpipeline.base import DataLoaderABC, DataLoaderCallableWrapper, ExperimentABC
from mlpipeline.entities import ExecutionModeKeys, ExperimentModeKeys, version_parameters

BUILT = []


class Data(DataLoaderABC):
    def __init__(self, size, scale=1):
        BUILT.append((size, scale))
        self.size = size

    def get_train_input(self, **kwargs):
        return "train"

    def get_test_input(self, **kwargs):
        return "test"


class Exp(ExperimentABC):
    def train_loop(self, input_fn):
        return input_fn


wrapped = DataLoaderCallableWrapper(Data, 3, scale=2)
record("built_before_use", list(BUILT))
first = wrapped()
record("built_after_call", list(BUILT))
record("same_loader", first is wrapped())
record("wrapper_args", [wrapped.args, wrapped.kwargs])

v = Versions(wrapped, 4, 10, learning_rate=0.01)
v.add_version("a", hyperparameter=1)
v.add_version("b", experiment_dir_suffix="sfx", order=7, custom_paramters={"x": [1, 2]})
v.add_version("c", batch_size=8, epoch_count=2)
v.add_version("d")
for name in ("a", "b", "c", "d"):
    version = v.get_version(name)
    record(name + "_items", {k: val for k, val in version.items() if k != "dataloader"})
    record(name + "_keys", list(version.keys()))
    record(name + "_attr", [version.name, version.epoch_count, version.order])
record("names", v.get_version_names())
record("get_versions", [[n, ver["name"]] for n, ver in v.get_versions()])
attempt("filter_both", lambda: v.filter_versions(whitelist_versions=["a"], blacklist_versions=["b"]), ValueError)
record("filter_none", v.filter_versions())
v.filter_versions(blacklist_versions=["c"])
record("after_blacklist", v.get_version_names())
v.filter_versions(whitelist_versions=["d", "a"])
record("after_whitelist", v.get_version_names())
attempt("whitelist_unknown", lambda: v.filter_versions(whitelist_versions=["zz"]), ValueError)
attempt("get_unknown", lambda: v.get_version("zz"), ValueError)
other = Versions(wrapped, 1, 1)
other.add_version("e")
v.add_versions(other)
record("after_add_versions", v.get_version_names())

m = MetricContainer(metrics=[{"metrics": ["a", "b"]}, {"metrics": ["c"], "track_average_epoch_count": 3}],
                    track_average_epoch_count=2)
record("track_counts", [m.a.track_average_epoch_count, m.c.track_average_epoch_count])
for step in range(4):
    m.a.update(step)
    m.b.update(step * 2, 2)
    m.c.update(1.5)
record("avg", [m.a.avg(), m.b.avg(), m.c.avg()])
record("avg_epoch", [m.a.avg_epoch(), m.b.avg_epoch()])
record("epoch_state", [m.a.epoch_count, m.a.epoch_value])
record("log_epoch", m.log_metrics(log_to_file=False, complete_epoch=True))
record("log_subset", m.log_metrics(["a", "c"], log_to_file=False))
m.reset_epoch()
m.reset()
record("after_reset", [m.a.avg(), m.a.avg_epoch(), m.a.track_value_list, m.c.track_value_list])
record("keys", sorted(m.keys()))
m2 = MetricContainer(["x"], track_average_epoch_count=4)
record("single_track", m2.x.track_average_epoch_count)

record("modes", [ExperimentModeKeys.RUN, ExperimentModeKeys.TEST, ExperimentModeKeys.EXPORT,
                 ExecutionModeKeys.TRAIN, ExecutionModeKeys.TEST])
record("version_parameters", [version_parameters.NAME, version_parameters.DATALOADER,
                              version_parameters.BATCH_SIZE, version_parameters.EPOCH_COUNT,
                              version_parameters.EXPERIMENT_DIR_SUFFIX, version_parameters.ORDER])
exp = Exp(versions=v)
record("experiment_versions", exp.versions is v)
record("has_hooks", [callable(getattr(exp, n, None)) for n in
                     ("setup_model", "pre_execution_hook", "post_execution_hook", "train_loop", "evaluate_loop",
                      "export_model", "get_trained_step_count", "clean_experiment_dir", "log")])
done()
