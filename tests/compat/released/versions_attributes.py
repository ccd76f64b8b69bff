# The released Versions' public attributes: order_index counts automatic orders and can be set,
# versions can be replaced.
from _observe import record, done
from mlpipeline.utils import Versions

v = Versions(0.1, "dl", 1, 1)
record("start", v.order_index)
v.addV("a")
v.addV("b", order=4)
record("after", v.order_index)
v.order_index = 10
v.addV("c")
record("c_order", v.getVersion("c")["order"])
v.versions = {}
v.addV("d")
record("names", list(v.versions))
record("d_order", v.getVersion("d")["order"])
done()
