# get_version returns the stored version; an unknown name raises ValueError.
from _observe import record, attempt, done
from mlpipeline.utils import Versions

v = Versions("dl", 1, 1)
v.add_version("a")
record("same_object", v.get_version("a") is v._versions["a"])
attempt("unknown", lambda: v.get_version("zz"), ValueError)
try:
    v.get_version("zz")
except ValueError as exc:
    record("message_start", str(exc).startswith("Version name 'zz' not found"))
done()
