# written for mlpipeline 2.0a3 ... 2.0a7.post1: any zero-argument callable is a valid dataloader (2.x calls it)
from mlpipeline import Versions, MetricContainer, iterator
from mlpipeline.base import ExperimentABC, DataLoaderABC


class MyData(DataLoaderABC):
    def get_train_sample_count(self): return 10
    def get_test_sample_count(self): return 10
    def get_train_input(self, **kw): return lambda: [1, 2, 3]
    def get_test_input(self, **kw): return lambda: [4, 5]


class MyExperiment(ExperimentABC):
    def setup_model(self): self.model = self.current_version["lr"]
    def pre_execution_hook(self, mode): self.log("pre {}".format(mode))
    def train_loop(self, input_fn):
        m = MetricContainer(["loss"])
        for x in iterator(input_fn()): m.loss.update(x)
        return m
    def evaluate_loop(self, input_fn):
        m = MetricContainer(["acc"]); m.acc.update(0.5); return m


v = Versions(MyData, 1, 1, lr=0.1)
v.add_version("small", lr=0.01)
EXPERIMENT = MyExperiment(v)
