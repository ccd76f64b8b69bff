# Model.log and DataLoader.log: "Model- " prefix, terminal only unless log_to_file (2nd argument).
import os
import tempfile

from _observe import record, log_lines, done
from mlpipeline.helper import Model, DataLoader
from mlpipeline.utils import Versions, set_logger


class Loader(DataLoader):
    def __init__(self):
        pass


path = os.path.join(tempfile.mkdtemp(), "log")
set_logger(test_mode=False, no_log=False, log_file=path)
loader = Loader()
model = Model(Versions(0.1, loader, 1, 1))
model.log("not in file")
model.log("in file", True)
model.log("steps: ", 1000)  # as the original example wrote it: 1000 is log_to_file
model.log("keyword", log_to_file=True, level=40)
loader.log("from loader", log_to_file=True)
loader.log("loader terminal only")
record("lines", log_lines(path))
done()
