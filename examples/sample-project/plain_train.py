"""Train one version of models/sample_model.py with plain TensorFlow/Keras, no mlpipeline.

It repeats the model script's data preparation, network, step count, per-epoch
checkpoint and TensorBoard logging, so timing it against `mlpipeline -r` shows
what the runner itself costs. Keep it in step with models/sample_model.py.

    python plain_train.py [--version small|deep|wide_slow] [--out DIR] [--bare]
"""
import argparse
import csv
import importlib.util
import os
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_t0 = time.perf_counter()
import tensorflow as tf  # noqa: E402
TF_IMPORT_SECONDS = time.perf_counter() - _t0

HERE = os.path.dirname(os.path.abspath(__file__))
DATA_FILE = os.path.join(HERE, "models", "data", "penguins.csv")
NUMERIC_COLUMNS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL_COLUMNS = {"island": ["Biscoe", "Dream", "Torgersen"], "sex": ["female", "male"]}
CLASSES = ["Adelie", "Chinstrap", "Gentoo"]

# The same hyperparameters as the versions in models/sample_model.py.
DEFAULTS = dict(batch_size=32, epoc_count=20, learning_rate=0.01, hidden_units=[16], dropout=0.0, seed=0)
VERSIONS = {
    "small": {},
    "deep": dict(batch_size=16, epoc_count=30, learning_rate=0.005, hidden_units=[32, 16], dropout=0.1),
    "wide_slow": dict(batch_size=8, epoc_count=10, learning_rate=0.001, hidden_units=[64], dropout=0.2),
}


def load_penguins(test_fraction=0.2, seed=42):
    """Same split and encoding as PenguinsDataLoader: ((x_train, y_train), (x_test, y_test))."""
    with open(DATA_FILE, newline="") as f:
        rows = [r for r in csv.DictReader(f) if "NA" not in r.values()]
    numeric = np.array([[float(r[c]) for c in NUMERIC_COLUMNS] for r in rows], dtype=np.float32)
    onehots = [np.array([[r[col] == v for v in values] for r in rows], dtype=np.float32)
               for col, values in CATEGORICAL_COLUMNS.items()]
    labels = np.array([CLASSES.index(r["species"]) for r in rows], dtype=np.int32)
    order = np.random.RandomState(seed).permutation(len(rows))
    n_test = int(round(len(rows) * test_fraction))
    test_idx, train_idx = order[:n_test], order[n_test:]
    mean, std = numeric[train_idx].mean(axis=0), numeric[train_idx].std(axis=0)
    x = np.concatenate([(numeric - mean) / std] + onehots, axis=1)
    return (x[train_idx], labels[train_idx]), (x[test_idx], labels[test_idx])


def build_keras_model(feature_count, class_count, hidden_units, dropout):
    layers = [tf.keras.Input(shape=(feature_count,))]
    for units in hidden_units:
        layers.append(tf.keras.layers.Dense(units, activation="relu"))
        if dropout:
            layers.append(tf.keras.layers.Dropout(dropout))
    layers.append(tf.keras.layers.Dense(class_count, activation="softmax"))
    return tf.keras.Sequential(layers)


class EpochTimer(tf.keras.callbacks.Callback):
    def __init__(self, manager=None):
        super().__init__()
        self.manager, self.seconds = manager, []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self.manager is not None:  # the model script checkpoints every epoch too
            self.manager.save(checkpoint_number=int(self.model.optimizer.iterations))
        self.seconds.append(time.perf_counter() - self._start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="small", choices=sorted(VERSIONS))
    parser.add_argument("--out", help="model dir (default: a fresh temporary dir)")
    parser.add_argument("--bare", action="store_true", help="no checkpoints, no TensorBoard logs")
    args = parser.parse_args()
    params = dict(DEFAULTS, **VERSIONS[args.version])
    out = args.out or tempfile.mkdtemp(prefix="plain_train-")
    wall_start = time.perf_counter()

    (x_train, y_train), (x_test, y_test) = load_penguins()
    tf.keras.utils.set_random_seed(params["seed"])
    model = build_keras_model(x_train.shape[1], len(CLASSES), params["hidden_units"], params["dropout"])
    optimizer = tf.keras.optimizers.Adam(learning_rate=params["learning_rate"])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    manager, callbacks = None, []
    if not args.bare:
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model, optimizer=optimizer),
                                             os.path.join(out, "checkpoints"), max_to_keep=2)
        if importlib.util.find_spec("tensorboard") is not None:
            callbacks.append(tf.keras.callbacks.TensorBoard(os.path.join(out, "tensorboard"), write_graph=False))
    timer = EpochTimer(manager)
    callbacks.insert(0, timer)

    # Same step count as the runner: epoc_count * samples / batch_size batches.
    batch_size = params["batch_size"]
    steps = int(params["epoc_count"] * len(y_train) / batch_size)
    steps_per_epoch = max(1, round(len(y_train) / batch_size))
    full_epochs, remainder = divmod(steps, steps_per_epoch)
    dataset = (tf.data.Dataset.from_tensor_slices((x_train, y_train))
               .shuffle(len(y_train), seed=42, reshuffle_each_iteration=True)
               .repeat().batch(batch_size, drop_remainder=True).prefetch(2))
    train_start = time.perf_counter()
    if full_epochs:
        model.fit(dataset, steps_per_epoch=steps_per_epoch, epochs=full_epochs,
                  callbacks=callbacks, shuffle=False, verbose=0)
    if remainder:
        model.fit(dataset, steps_per_epoch=remainder, initial_epoch=full_epochs, epochs=full_epochs + 1,
                  callbacks=callbacks, shuffle=False, verbose=0)
    train_seconds = time.perf_counter() - train_start

    test = model.evaluate(tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(batch_size),
                          verbose=0, return_dict=True)
    wall_seconds = time.perf_counter() - wall_start

    per_epoch = timer.seconds
    steady = per_epoch[1:full_epochs] or per_epoch  # full epochs after the first (which traces the graph)
    print("version: {}  params: {}".format(args.version, params))
    print("steps: {} ({} epochs of {} batches + {})  model dir: {}".format(
        steps, full_epochs, steps_per_epoch, remainder, out))
    print("tensorflow import: {:.2f} s".format(TF_IMPORT_SECONDS))
    print("first epoch (incl. tracing): {:.3f} s".format(per_epoch[0]))
    print("seconds per epoch (steady): {:.4f} (mean of {})".format(sum(steady) / len(steady), len(steady)))
    print("training: {:.2f} s  total after import: {:.2f} s".format(train_seconds, wall_seconds))
    print("test accuracy: {:.4f}  test loss: {:.4f}".format(test["accuracy"], test["loss"]))


if __name__ == "__main__":
    main()
