# Versions(learning_rate, dataloader) alone: the other keys are None in every addV version.
from _observe import record, done
from mlpipeline.utils import Versions

v = Versions(0.3, "loader")
v.addV("a")
v.addV("b", batch_size=2)
record("a", v.getVersion("a"))
record("b", v.getVersion("b"))
record("defaults", v.versions_defaults)
done()
