# Released-API model script in the style of the original's example (ml-pipeline 4ad4e3f):
# pre_execution_hook without exec_mode, get_current_version, a resumable step count,
# allow_delete_model_dir=True. Each hook records what it was given.
import os

from mlpipeline.utils import Versions, version_parameters
from mlpipeline.helper import Model, DataLoader

from observe import Recorder

REC = Recorder()


class Loader(DataLoader):
    def __init__(self):
        self.log("creating dataloader")

    def get_train_sample_count(self):
        return 40

    def get_test_sample_count(self):
        return 12

    def get_train_input(self, **kargs):
        return lambda: ("train", sorted(kargs.items()))

    def get_test_input(self):
        return lambda: ("test",)


class Hooked(Model):
    def __init__(self, versions, **args):
        super().__init__(versions, **args)
        self.add_to_summery("built")

    def pre_execution_hook(self, version, model_dir):
        REC.start(self.name, version[version_parameters.NAME])
        REC.add("pre_execution_hook", sorted(version), self.name, self.summery, isinstance(model_dir, str),
                os.path.exists(model_dir))
        self.current_version = version
        self.add_to_summery("version {}".format(version["name"]))

    def get_current_version(self):
        REC.add("get_current_version")
        return self.current_version

    def get_trained_step_count(self):
        REC.add("get_trained_step_count")
        return self.current_version["trained"]

    def clean_model_dir(self, model_dir):
        REC.before_start("clean_model_dir")

    def train_model(self, input_fn, steps):
        REC.add("train_model", steps, input_fn())
        self.log("steps: ", steps)
        return "trained"

    def evaluate_model(self, input_fn, steps):
        REC.add("evaluate_model", steps, input_fn(), self.summery)
        return "evaluated"


v = Versions(0.01, Loader(), 4, 2)
v.addV("fresh", custom_paramters={"trained": None})
v.addV("partial", custom_paramters={"trained": 5})
v.addV("done", custom_paramters={"trained": 25})
v.addV("bigger_batch", batch_size=8, epoc_count=3, custom_paramters={"trained": 1})
MODEL = Hooked(versions=v, allow_delete_model_dir=True)
