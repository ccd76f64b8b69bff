# add_version order: automatic indexes, explicit orders, and a duplicate name replacing the first.
from _observe import record, done
from mlpipeline.utils import Versions

v = Versions("dl", 1, 1)
v.add_version("a")
v.add_version("b", order=10)
v.add_version("c")
v.add_version("a", batch_size=7)
v.add_version("d", order=0)
record("names", list(v._versions))
record("orders", {n: v.get_version(n).order for n in "abcd"})
record("a_batch", v.get_version("a").batch_size)
done()
