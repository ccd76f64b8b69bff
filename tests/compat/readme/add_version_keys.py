# add_version: the keys a README-era version holds, their order, attribute access, no 'name' key.
from _observe import record, done
from mlpipeline.utils import Versions
from mlpipeline.helper import DataLoader


class Loader(DataLoader):
    def __init__(self):
        pass


dl = Loader()
v = Versions(dl, 4, 2)
v.add_version("a", lr=0.1, custom_paramters={"x": 1, "lr": 0.2})
a = v.get_version("a")
record("keys", list(a))
record("version", a)
record("attrs", [a.lr, a.x, a.batch_size, a.epoc_count, a.order, a.model_dir_suffix, a.dataloader is dl])
record("name_is_key", "name" in a)
record("is_dict", isinstance(a, dict))
a.extra = 5
record("set_attr_is_item", a["extra"])
done()
