# README-era versions are attribute dicts all the way down (EasyDict): nested dicts, dicts in lists.
from _observe import record, attempt, done
from mlpipeline.utils import Versions

cfg = {"inner": {"x": 1}, "n": 2}
v = Versions("dl", 4, 2)
v.add_version("a", cfg=cfg, layers=[{"units": 8}, 3], pair=({"k": "v"}, 1))
a = v.get_version("a")
record("nested_attr", [a.cfg.inner.x, a.cfg.n, a.layers[0].units, a.layers[1], a.pair[0].k])
record("types", [type(a.layers).__name__, type(a.pair).__name__, isinstance(a.cfg, dict)])
record("copied", a.cfg is cfg)
a.later = {"deep": {"er": 3}}
record("later", a.later.deep.er)
attempt("missing", lambda: a.nope, AttributeError)
done()
