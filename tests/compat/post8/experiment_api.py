"""An Experiment-era script's view of the API: argv[2] names the generation (post8: mlpipeline.helper,
post12: mlpipeline.base). Runs under the released package and under this project."""
import sys

from _observe import attempt, done, record

from mlpipeline.utils import MetricContainer, Versions, version_parameters

if sys.argv[2] == "post8":
    from mlpipeline.helper import DataLoader as Loader
    from mlpipeline.helper import Experiment as Base
else:
    from mlpipeline.base import DataLoaderABC as Loader
    from mlpipeline.base import ExperimentABC as Base


class Data(Loader):
    def __init__(self):
        pass

    def get_train_sample_count(self):
        return 10


class Exp(Base):
    def train_loop(self, input_fn, steps, *version):
        return steps


dl = Data()
v = Versions(dl, 2, 3)
v.add_version("plain", hyperparameter=1)
v.add_version("suffixed", experiment_dir_suffix="s1", order=5)
v.add_version("custom", custom_paramters={"x": [1, 2]})
exp = Exp(v)
for name in ("plain", "suffixed", "custom"):
    version = v.get_version(name)
    record(name + "_keys", list(version.keys()))
    record(name + "_suffix", version[version_parameters.EXPERIMENT_DIR_SUFFIX])
    record(name + "_order", version.order)
record("suffix_key", version_parameters.EXPERIMENT_DIR_SUFFIX)
record("allow_delete", exp.allow_delete_experiment_dir)
record("reset_steps", exp.reset_steps)
exp2 = Exp(v, allow_delete_experiment_dir=True, reset_steps=True)
record("allow_delete_2", [exp2.allow_delete_experiment_dir, exp2.reset_steps])
record("summery_start", exp.summery)
exp.add_to_summery("one")
exp.add_to_summery(2)
record("summery", exp.summery)
dl.add_to_summery("rows: 10")
record("dl_summery", dl.summery)
attempt("not_versions", lambda: Exp({"a": 1}), ValueError)
attempt("train_loop", lambda: exp.train_loop(None, 4, None))
m = MetricContainer(["a"])
m.a.update(3)
record("metric", m.a.avg())
record("is_versions", isinstance(exp.versions, Versions))
if sys.argv[2] == "post12":  # filter_versions came with post9
    f = Versions(dl, 2, 3)
    for name in ("a", "b", "c", "d"):
        f.add_version(name)
    attempt("filter_both", lambda: f.filter_versions(whitelist_versions=["a"], blacklist_versions=["b"]), ValueError)
    record("filter_none", f.filter_versions())
    record("filter_blacklist", [f.filter_versions(blacklist_versions=["c"]), f.get_version_names()])
    f.filter_versions(whitelist_versions=["d", "a"])
    record("filter_whitelist", [f.get_version_names(), [f.get_version(n).order for n in f.get_version_names()]])
    attempt("filter_gone", lambda: f.get_version("b"), ValueError)
    attempt("filter_unknown", lambda: f.filter_versions(whitelist_versions=["zz"]), ValueError)
    f.add_version("e")
    record("filter_after", [f.get_version_names(), f.get_version("e").order])
done()
