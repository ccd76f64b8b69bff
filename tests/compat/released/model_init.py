# Model(versions, allow_delete_model_dir, reset_steps): attributes, summery, and a non-Versions refused.
from _observe import record, attempt, done
from mlpipeline.helper import Model
from mlpipeline.utils import Versions

v = Versions(0.1, "dl", 1, 1)
m = Model(v)
record("defaults", [m.versions is v, m.allow_delete_model_dir, m.reset_steps, m.summery])
m2 = Model(v, allow_delete_model_dir=True, reset_steps=True)
record("given", [m2.allow_delete_model_dir, m2.reset_steps])
m3 = Model(v, True, True)
record("positional", [m3.allow_delete_model_dir, m3.reset_steps])
attempt("not_versions", lambda: Model({"a": 1}), ValueError)
attempt("none", lambda: Model(None), ValueError)
record("class_defaults", [Model.versions, Model.allow_delete_model_dir, Model.reset_steps, Model.summery])
done()
