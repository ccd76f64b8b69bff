# written for mlpipeline 2.0a4.post8 (its __init__ re-exported the base classes and keys)
from mlpipeline import (ExperimentABC, DataLoaderABC, DataLoaderCallableWrapper, Versions,
                        MetricContainer, iterator, ExperimentModeKeys, version_parameters)


class MyData(DataLoaderABC):
    def get_train_sample_count(self): return 10
    def get_test_sample_count(self): return 10
    def get_train_input(self, **kw): return lambda: [1, 2, 3]
    def get_test_input(self, **kw): return lambda: [4, 5]


class MyExperiment(ExperimentABC):
    def setup_model(self):
        self.model = self.current_version["lr"]
    def pre_execution_hook(self, mode=ExperimentModeKeys.TEST):
        self.log("pre {} name={}".format(mode, self.current_version[version_parameters.NAME]))
    def train_loop(self, input_fn):
        m = MetricContainer(["loss"])
        for epoch in iterator(range(self.current_version[version_parameters.EPOCH_COUNT])):
            for x in iterator(input_fn()): m.loss.update(x)
        return m
    def evaluate_loop(self, input_fn):
        m = MetricContainer(["acc"]); m.acc.update(0.5); return m
    def export_model(self): pass


v = Versions(DataLoaderCallableWrapper(MyData), 1, 2)
v.add_version("small", lr=0.01)
EXPERIMENT = MyExperiment(v)
