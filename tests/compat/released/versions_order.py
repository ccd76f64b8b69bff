# addV's automatic order: declaration index, not consumed by an explicit order; Versions(order=...) default.
from _observe import record, done
from mlpipeline.utils import Versions

v = Versions(0.1, "dl", 1, 1)
v.addV("a")
v.addV("b", order=10)
v.addV("c")
v.addV("d", order=0)
record("orders", {n: v.getVersion(n)["order"] for n in "abcd"})
w = Versions(0.1, "dl", 1, 1, order=5)
w.addV("x")
w.addV("y")
record("default_order", [w.getVersion("x")["order"], w.getVersion("y")["order"]])
done()
