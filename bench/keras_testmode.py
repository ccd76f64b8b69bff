"""Test mode over a Keras script: TensorFlow is imported once for all versions."""
from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import textwrap

from .common import Result, mlpipeline_cmd, reset_outputs, wall

SCRIPT = textwrap.dedent('''\
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import keras
    from mlpipeline.helper import Model, DataLoader
    from mlpipeline.utils import Versions

    class Data(DataLoader):
        def __init__(self):
            rng = np.random.RandomState(0)
            self.x = rng.normal(size=(256, 8)).astype("float32")
            self.y = (self.x.sum(axis=1) > 0).astype("float32")
        def get_train_input(self, mode=None, **kw): return (self.x, self.y)
        def get_test_input(self, **kw): return (self.x, self.y)
        def get_train_sample_count(self): return 256
        def get_test_sample_count(self): return 256

    class Net(Model):
        def pre_execution_hook(self, version, model_dir, exec_mode="test"):
            self.version = version
            layers = [keras.Input((8,))] + [keras.layers.Dense(version["units"], activation="relu")
                                            for _ in range(version["depth"])]
            self.net = keras.Sequential(layers + [keras.layers.Dense(1, activation="sigmoid")])
            self.net.compile(optimizer="adam", loss="binary_crossentropy")
        def train_model(self, input_fn, steps):
            x, y = input_fn
            batch = self.version["batch_size"]
            self.net.fit(x, y, batch_size=batch, epochs=1, steps_per_epoch=steps, verbose=0)
        def evaluate_model(self, input_fn, steps):
            x, y = input_fn
            return {"loss": float(self.net.evaluate(x, y, verbose=0, steps=steps))}

    versions = Versions(Data(), 32, 1)
    for i in range(COUNT):
        versions.add_version("v%d" % i, units=8 * (i + 1), depth=1 + i % 3)
    MODEL = Net(versions)
    ''')

PLAIN = textwrap.dedent('''\
    import importlib.util, sys, tempfile
    spec = importlib.util.spec_from_file_location("net", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for version in module.MODEL.versions.get_versions():
        loader = version["dataloader"]
        module.MODEL.pre_execution_hook(version, tempfile.mkdtemp(), "test")
        module.MODEL.train_model(loader.get_train_input(), 1)
        module.MODEL.evaluate_model(loader.get_train_input(), 1)
        module.MODEL.evaluate_model(loader.get_test_input(), 1)
    ''')


def _project(count: int) -> str:
    root = tempfile.mkdtemp(prefix="mlp-bench-keras-")
    os.makedirs(os.path.join(root, "models"))
    with open(os.path.join(root, "mlp.config"), "w") as f:
        f.write("[MLP]\nmodels_dir = models\n")
    with open(os.path.join(root, "models_test.config"), "w") as f:
        f.write("[MLP]\nuse_blacklist = False\n[WHITELISTED_MODELS]\nnet.py\n")
    with open(os.path.join(root, "models", "net.py"), "w") as f:
        f.write(SCRIPT.replace("COUNT", str(count)))
    with open(os.path.join(root, "plain.py"), "w") as f:
        f.write(PLAIN)
    return root


def keras_test_mode(runs: int = 3) -> list:
    """``mlpipeline`` (test mode) over 5 Keras versions vs the same hooks called
    by a plain script (1 TF import + 5 × (build + 1 step)); ratio reported
    against 1 import + 1 version."""
    try:
        import keras  # noqa: F401
    except ImportError:
        return [Result("test mode, 5 Keras versions", 0, None, "needs keras", False, note="keras not installed")]
    five, one = _project(5), _project(1)
    try:
        samples = {"mlp5": [], "plain5": [], "plain1": []}
        for _ in range(runs):
            reset_outputs(five)
            samples["mlp5"].append(wall(mlpipeline_cmd() + ["-C", five]))
            samples["plain5"].append(wall([sys.executable, os.path.join(five, "plain.py"),
                                           os.path.join(five, "models", "net.py")]))
            samples["plain1"].append(wall([sys.executable, os.path.join(one, "plain.py"),
                                           os.path.join(one, "models", "net.py")]))
    finally:
        shutil.rmtree(five, ignore_errors=True)
        shutil.rmtree(one, ignore_errors=True)
    mlp5, plain5, plain1 = (statistics.median(samples[k]) for k in ("mlp5", "plain5", "plain1"))
    passed = mlp5 <= plain5 * 1.10
    return [Result("test mode, 5 Keras versions (1 TF import)", round(mlp5 * 1000), round(plain1 * 1000),
                   "<= 1.10 x plain 1 import + 5 x (build+step)", passed,
                   note=f"plain 1 import + 5 versions {plain5:.2f} s; mlpipeline {mlp5:.2f} s "
                        f"({mlp5 / plain5:.2f} x); baseline = 1 import + 1 version")]
