# custom_paramters: added after the standard keys, overriding them; values kept as given (no copies).
from _observe import record, done
from mlpipeline.utils import Versions

cfg = {"layers": [1, 2], "inner": {"x": 1}}
v = Versions(0.1, "dl", 1, 1)
v.addV("a", custom_paramters={"batch_size": 64, "cfg": cfg, "order": "late"})
a = v.getVersion("a")
record("version", a)
record("keys", list(a))
record("cfg_same_object", a["cfg"] is cfg)
a["new"] = 1
record("set_item", v.getVersion("a")["new"])
done()
