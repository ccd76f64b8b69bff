# written for mlpipeline 2.0a1 / 2.0a2: the pipeline calls version_spec["dataloader"]() to build the dataloader
from mlpipeline.utils import Versions, MetricContainer, ExecutionModeKeys
from mlpipeline.base import ExperimentABC, DataLoaderABC


class MyData(DataLoaderABC):
    def __init__(self):
        self.log("creating dataloader")
    def get_train_sample_count(self): return 10
    def get_test_sample_count(self): return 10
    def get_train_input(self, **kw): return lambda: [1, 2, 3]
    def get_test_input(self, **kw): return lambda: [4, 5]


class MyExperiment(ExperimentABC):
    def setup_model(self, version, experiment_dir):
        self.model = version["lr"]
    def pre_execution_hook(self, version, experiment_dir, exec_mode=ExecutionModeKeys.TEST):
        self.log("pre: {} {}".format(version["lr"], experiment_dir))
    def get_trained_step_count(self): return 0
    def train_loop(self, input_fn, steps, version):
        m = MetricContainer(["loss"])
        for x in input_fn(): m.loss.update(x)
        return m
    def evaluate_loop(self, input_fn, steps, version):
        m = MetricContainer(["acc"]); m.acc.update(0.5); return m
    def export_model(self, version): pass


v = Versions(MyData, 2, 1)                  # the class itself: 2.0a1 calls it to build each version's dataloader
v.add_version("small", lr=0.01)
v.add_version("lam", lr=0.02, dataloader=lambda: MyData())   # or any zero-argument callable
EXPERIMENT = MyExperiment(v)
