# Released-API script with allow_delete_model_dir=True whose version "flaky" fails on its
# first run. Every hook call is appended to observations/<version>.log, so two sessions
# of `mlpipeline -r -u` show which starts were fresh (clean_model_dir) and which resumed.
import os

from mlpipeline.utils import Versions
from mlpipeline.helper import Model, DataLoader


def note(version, text):
    os.makedirs("observations", exist_ok=True)
    with open(os.path.join("observations", version + ".log"), "a") as handle:
        handle.write(text + "\n")


class Loader(DataLoader):
    def __init__(self):
        pass

    def get_train_sample_count(self):
        return 8

    def get_test_sample_count(self):
        return 4

    def get_train_input(self, **kargs):
        return None

    def get_test_input(self):
        return None


class Flaky(Model):
    pending = None

    def clean_model_dir(self, model_dir):
        Flaky.pending = "clean_model_dir"

    def pre_execution_hook(self, version, model_dir):
        self.current_version = version
        if Flaky.pending:
            note(version["name"], Flaky.pending)
            Flaky.pending = None
        note(version["name"], "pre_execution_hook")

    def get_current_version(self):
        return self.current_version

    def get_trained_step_count(self):
        return None

    def train_model(self, input_fn, steps):
        name = self.current_version["name"]
        flag = os.path.join("observations", name + ".failed-once")
        if name == "flaky" and not os.path.exists(flag):
            open(flag, "w").close()
            note(name, "train_model raises")
            raise RuntimeError("first attempt fails")
        note(name, "train_model {}".format(steps))

    def evaluate_model(self, input_fn, steps):
        note(self.current_version["name"], "evaluate_model {}".format(steps))
        return "ok"


v = Versions(0.1, Loader(), 2, 1)
v.addV("steady")
v.addV("flaky")
MODEL = Flaky(v, allow_delete_model_dir=True)
