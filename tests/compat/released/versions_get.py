# getVersion returns the stored dict; an unknown name raises ValueError; .versions is the dict of them.
from _observe import record, attempt, done
from mlpipeline.utils import Versions

v = Versions(0.1, "dl", 1, 1)
v.addV("a")
record("same_object", v.getVersion("a") is v.versions["a"])
attempt("unknown", lambda: v.getVersion("zz"), ValueError)
try:
    v.getVersion("zz")
except ValueError as exc:
    record("message_start", str(exc).startswith("Version name 'zz' not found"))
record("versions_is_dict", isinstance(v.versions, dict))
record("defaults", v.versions_defaults)
done()
