"""Sample mlpipeline model script: a small Keras classifier for Palmer Penguins.

The runner imports this file, reads `MODEL` and, for every version declared at
the bottom, calls:

    MODEL.pre_execution_hook(version, model_dir, exec_mode)
    MODEL.get_trained_step_count()
    MODEL.train_model(dataloader.get_train_input(mode=ModeKeys.TRAIN), steps)
    MODEL.evaluate_model(dataloader.get_train_input(mode=ModeKeys.TEST), steps)
    MODEL.evaluate_model(dataloader.get_test_input(), steps)

Everything a version writes (checkpoints, TensorBoard logs) goes into
`model_dir`, so running the same version again resumes where it stopped.
"""
import csv
import importlib.util
import os
import shutil

import numpy as np

# Keep TensorFlow's C++ start-up chatter out of the run logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the sample runs quietly: no TensorFlow start-up notices
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # (its oneDNN notice is printed regardless of the level)
import tensorflow as tf  # noqa: E402

from mlpipeline.helper import DataLoader, Model  # noqa: E402
from mlpipeline.utils import (ExecutionModeKeys, ModeKeys, Versions,  # noqa: E402
                              version_parameters)

DATA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "penguins.csv")
NUMERIC_COLUMNS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL_COLUMNS = {"island": ["Biscoe", "Dream", "Torgersen"], "sex": ["female", "male"]}
LABEL_COLUMN = "species"
CLASSES = ["Adelie", "Chinstrap", "Gentoo"]


class PenguinsDataLoader(DataLoader):
    """Reads the CSV once, splits it 80/20 with a fixed seed and serves tf.data pipelines.

    Numeric columns are standardized with the *training* split's mean and std;
    island and sex are one-hot encoded. Inputs are zero-argument callables that
    return an unbatched `tf.data.Dataset` of (features, label); the model
    batches them with its version's batch size.
    """

    def __init__(self, data_file=DATA_FILE, test_fraction=0.2, seed=42):
        # (The base class's __init__ is deliberately not called: the original
        # tool's DataLoader.__init__ raised NotImplementedError.)
        with open(data_file, newline="") as f:
            rows = [r for r in csv.DictReader(f) if "NA" not in r.values()]

        numeric = np.array([[float(r[c]) for c in NUMERIC_COLUMNS] for r in rows], dtype=np.float32)
        onehots = [np.array([[r[col] == v for v in values] for r in rows], dtype=np.float32)
                   for col, values in CATEGORICAL_COLUMNS.items()]
        labels = np.array([CLASSES.index(r[LABEL_COLUMN]) for r in rows], dtype=np.int32)

        # Deterministic split: same seed, same train/test rows on every machine.
        order = np.random.RandomState(seed).permutation(len(rows))
        n_test = int(round(len(rows) * test_fraction))
        test_idx, train_idx = order[:n_test], order[n_test:]

        # Standardize with training statistics only (no test-set leakage).
        mean = numeric[train_idx].mean(axis=0)
        std = numeric[train_idx].std(axis=0)
        features = np.concatenate([(numeric - mean) / std] + onehots, axis=1)

        self.seed = seed
        self.feature_count = features.shape[1]
        self.class_count = len(CLASSES)
        self._train = (features[train_idx], labels[train_idx])
        self._test = (features[test_idx], labels[test_idx])

        self.log("Loaded {} penguins: {} train / {} test, {} features".format(
            len(rows), len(train_idx), len(test_idx), self.feature_count))
        self.add_to_summery("standardization (train split): mean={} std={}".format(
            np.round(mean, 2).tolist(), np.round(std, 2).tolist()))

    def get_train_input(self, mode=ModeKeys.TRAIN, **kwargs):
        x, y = self._train
        shuffle = mode == ModeKeys.TRAIN  # evaluation on the train split needs no shuffling

        def input_fn():
            ds = tf.data.Dataset.from_tensor_slices((x, y))
            if shuffle:
                ds = ds.shuffle(len(y), seed=self.seed, reshuffle_each_iteration=True)
            return ds
        return input_fn

    def get_test_input(self, **kwargs):
        x, y = self._test
        return lambda: tf.data.Dataset.from_tensor_slices((x, y))

    def get_train_sample_count(self):
        return len(self._train[1])

    def get_test_sample_count(self):
        return len(self._test[1])

    def get_dataloader_summery(self, **kwargs):
        return ("Palmer Penguins (data/penguins.csv): {} train / {} test rows, "
                "features: {} + one-hot {}, classes: {}".format(
                    self.get_train_sample_count(), self.get_test_sample_count(),
                    ", ".join(NUMERIC_COLUMNS), ", ".join(CATEGORICAL_COLUMNS), ", ".join(CLASSES)))


def build_keras_model(feature_count, class_count, hidden_units, dropout):
    """A plain MLP: Dense(relu) [+ Dropout] per entry of hidden_units, softmax on top."""
    layers = [tf.keras.Input(shape=(feature_count,))]
    for units in hidden_units:
        layers.append(tf.keras.layers.Dense(units, activation="relu"))
        if dropout:
            layers.append(tf.keras.layers.Dropout(dropout))
    layers.append(tf.keras.layers.Dense(class_count, activation="softmax"))
    return tf.keras.Sequential(layers)


class _EpochEnd(tf.keras.callbacks.Callback):
    """After every epoch: save a checkpoint (so an interrupted run resumes) and report the
    training curves to mlpipeline (when the runner offers log_metric)."""

    def __init__(self, owner):
        super().__init__()
        self.owner = owner

    def on_epoch_end(self, epoch, logs=None):
        self.owner.checkpoint_manager.save(checkpoint_number=int(self.owner.optimizer.iterations))
        log_metric = getattr(self.owner, "log_metric", None)
        if callable(log_metric):
            for name, value in (logs or {}).items():
                log_metric(name, float(value), step=epoch)


class PenguinsModel(Model):
    def pre_execution_hook(self, version, model_dir, exec_mode=ExecutionModeKeys.TEST):
        self.current_version = version
        self.model_dir = model_dir
        self.dataloader = version[version_parameters.DATALOADER]
        self.batch_size = int(version[version_parameters.BATCH_SIZE])
        self.train_sample_count = self.dataloader.get_train_sample_count()

        # Fresh graph state and a reproducible initialisation for every version.
        tf.keras.backend.clear_session()
        tf.keras.utils.set_random_seed(version["seed"])

        self.model = build_keras_model(self.dataloader.feature_count, self.dataloader.class_count,
                                       version["hidden_units"], version["dropout"])
        self.optimizer = tf.keras.optimizers.Adam(learning_rate=version[version_parameters.LEARNING_RATE])
        self.model.compile(optimizer=self.optimizer,
                           loss="sparse_categorical_crossentropy",
                           metrics=["accuracy"])
        # Create the optimizer's slot variables now so a checkpoint restores into them.
        self.optimizer.build(self.model.trainable_variables)

        # Resume: the checkpoint holds the weights and the optimizer (incl. its step counter).
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer)
        self.checkpoint_manager = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(model_dir, "checkpoints"), max_to_keep=2)
        if self.checkpoint_manager.latest_checkpoint:
            try:
                self.checkpoint.restore(self.checkpoint_manager.latest_checkpoint).assert_existing_objects_matched()
            except (ValueError, AssertionError) as e:
                raise ValueError("{} holds a checkpoint of a different model; remove it or set "
                                 "allow_delete_model_dir=True ({})".format(model_dir, e)) from e
            self.log("Restored {} (step {})".format(self.checkpoint_manager.latest_checkpoint,
                                                    int(self.optimizer.iterations)))

        self.log("Version {}: hidden_units={} dropout={} learning_rate={} batch_size={} epoc_count={}".format(
            version[version_parameters.NAME], version["hidden_units"], version["dropout"],
            version[version_parameters.LEARNING_RATE], self.batch_size, version[version_parameters.EPOC_COUNT]))
        summary = []
        self.model.summary(print_fn=lambda line, *args, **kwargs: summary.append(line))
        self.add_to_summery("\n".join(summary))

    def get_current_version(self):
        return self.current_version

    def get_trained_step_count(self):
        # One step = one batch (the optimizer counts them); None: nothing trained yet.
        return int(self.optimizer.iterations) or None

    def train_model(self, input_fn, steps):
        steps = max(0, int(steps))  # the runner's count may be fractional
        if steps == 0:
            self.log("Nothing left to train (step {})".format(int(self.optimizer.iterations)))
            return
        # An endless stream of equally sized batches; a Keras "epoch" is one pass worth of batches.
        dataset = input_fn().repeat().batch(self.batch_size, drop_remainder=True).prefetch(2)
        steps_per_epoch = max(1, round(self.train_sample_count / self.batch_size))
        start_epoch = int(self.optimizer.iterations) // steps_per_epoch
        full_epochs, remainder = divmod(steps, steps_per_epoch)
        callbacks = [_EpochEnd(self)]
        # TensorFlow >= 2.20 no longer installs TensorBoard; write its logs when it is available.
        if importlib.util.find_spec("tensorboard") is not None:
            callbacks.append(tf.keras.callbacks.TensorBoard(os.path.join(self.model_dir, "tensorboard"),
                                                            write_graph=False))
        else:
            self.log("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
        self.log("Training {} steps from step {}".format(steps, int(self.optimizer.iterations)))

        history = {}
        if full_epochs:
            h = self.model.fit(dataset, steps_per_epoch=steps_per_epoch, initial_epoch=start_epoch,
                               epochs=start_epoch + full_epochs, callbacks=callbacks, shuffle=False, verbose=0)
            history = h.history
        if remainder:  # the last, partial epoch (also the 1-step test mode)
            h = self.model.fit(dataset, steps_per_epoch=remainder, initial_epoch=start_epoch + full_epochs,
                               epochs=start_epoch + full_epochs + 1, callbacks=callbacks, shuffle=False, verbose=0)
            history = h.history

        self.log("Trained to step {}, saved {}; last epoch loss={:.4f} accuracy={:.4f}".format(
            int(self.optimizer.iterations), self.checkpoint_manager.latest_checkpoint,
            history["loss"][-1], history["accuracy"][-1]))

    def evaluate_model(self, input_fn, steps):
        # Always evaluates the whole split (it is small); `steps` is not needed here.
        results = self.model.evaluate(input_fn().batch(self.batch_size), verbose=0, return_dict=True)
        return {"accuracy": float(results["accuracy"]), "loss": float(results["loss"])}

    def clean_model_dir(self, model_dir):
        # The runner calls this (with allow_delete_model_dir=True) to reset a version's training.
        for entry in os.listdir(model_dir) if os.path.isdir(model_dir) else []:
            path = os.path.join(model_dir, entry)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)


# Versions: defaults first, then named hyperparameter sets that override them.
dataloader = PenguinsDataLoader()
versions = Versions(dataloader, batch_size=32, epoc_count=20,
                    learning_rate=0.01, hidden_units=[16], dropout=0.0, seed=0)
versions.add_version("small")  # all defaults: 20 epochs, enough to separate the three species
# Two shorter trainings, so the versions end apart (mlpipeline compare sample_model shows how far):
versions.add_version("deep", batch_size=16, epoc_count=2, learning_rate=0.002,
                     custom_paramters={"hidden_units": [32, 16], "dropout": 0.1})
versions.add_version("wide_slow", batch_size=8, epoc_count=2, learning_rate=0.0003,
                     custom_paramters={"hidden_units": [64], "dropout": 0.2})

MODEL = PenguinsModel(versions)
