# Versions' keyword arguments (model_dir_suffix, order, hooks, use_all_classes, classes_count,
# classes_offset) as defaults, and addV's own keywords overriding them.
from _observe import record, done
from mlpipeline.utils import Versions, version_parameters as p


def hook():
    return 1


v = Versions(0.1, "loader", batch_size=2, epoc_count=3, model_dir_suffix="s", hooks=[hook],
             use_all_classes=True, classes_count=10, classes_offset=1)
v.addV("a")
v.addV("b", dataloader="other", batch_size=5, epoc_count=6, learning_rate=0.5, model_dir_suffix="x", order=7,
       hooks="h", use_all_classes=False, classes_count=5, classes_offset=2, custom_paramters={"extra": [1, 2]})
for name in ("a", "b"):
    record(name, v.getVersion(name))
    record(name + "_keys", list(v.getVersion(name)))
record("hooks_kept", v.getVersion("a")[p.HOOKS][0] is hook)
done()
