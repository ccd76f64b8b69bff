# Versions(learning_rate, dataloader, batch_size, epoc_count) and addV: the keys set on every version.
from _observe import record, done
from mlpipeline.utils import Versions
from mlpipeline.helper import DataLoader


class Loader(DataLoader):
    def __init__(self):
        pass


dl = Loader()
v = Versions(0.01, dl, 4, 2)
v.addV("a")
version = v.getVersion("a")
record("keys", list(version.keys()))
record("version", version)
record("dataloader_is_same", version["dataloader"] is dl)
record("is_dict", isinstance(version, dict))
done()
