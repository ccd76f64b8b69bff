# addV with a name already used: the later version replaces the earlier one in place.
from _observe import record, done
from mlpipeline.utils import Versions

v = Versions(0.1, "dl", 1, 1)
v.addV("a", batch_size=2)
v.addV("b")
v.addV("a", batch_size=3)
record("names", list(v.versions))
record("a", v.getVersion("a"))
done()
