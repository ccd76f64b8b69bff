# written for mlpipeline 2.0a3.post1 ... 2.0a4.post6: hooks read self.current_version, loops still get `steps`
from mlpipeline.utils import Versions, MetricContainer
from mlpipeline.base import ExperimentABC, DataLoaderABC, DataLoaderCallableWrapper


class MyData(DataLoaderABC):
    def get_train_sample_count(self): return 10
    def get_test_sample_count(self): return 10
    def get_train_input(self, **kw): return lambda: [1, 2, 3]
    def get_test_input(self, **kw): return lambda: [4, 5]


class MyExperiment(ExperimentABC):
    def setup_model(self):
        self.model = self.current_version["lr"]
    def pre_execution_hook(self, mode="Test"):
        self.log("pre {} {}".format(mode, self.experiment_dir))
    def train_loop(self, input_fn, steps):
        m = MetricContainer(["loss"])
        for x in input_fn()[:steps]: m.loss.update(x)
        return m
    def evaluate_loop(self, input_fn, steps):
        m = MetricContainer(["acc"]); m.acc.update(0.5); return m
    def export_model(self): pass


v = Versions(DataLoaderCallableWrapper(MyData), 1, 1)
v.add_version("small", lr=0.01)
EXPERIMENT = MyExperiment(v)
