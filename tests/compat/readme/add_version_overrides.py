# add_version's own parameters override the Versions defaults.
from _observe import record, done
from mlpipeline.utils import Versions

v = Versions("dl", 4, 2)
v.add_version("b", dataloader="other", batch_size=8, epoc_count=3, model_dir_suffix="-s", order=9)
v.add_version("c", batch_size=0, epoc_count=0)
record("b", v.get_version("b"))
record("c", v.get_version("c"))
done()
