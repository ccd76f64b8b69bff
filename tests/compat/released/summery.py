# add_to_summery on Model and DataLoader: starts as None, each call appends "\t\t<text>\n".
from _observe import record, done
from mlpipeline.helper import Model, DataLoader
from mlpipeline.utils import Versions


class Loader(DataLoader):
    def __init__(self):
        self.add_to_summery("loader built")


class M(Model):
    def __init__(self, versions):
        super().__init__(versions)
        self.add_to_summery("model built")


loader = Loader()
model = M(Versions(0.1, loader, 1, 1))
model.add_to_summery(42)
loader.add_to_summery(["x"])
record("model", model.summery)
record("loader", loader.summery)
record("fresh_loader", DataLoader.summery)
done()
