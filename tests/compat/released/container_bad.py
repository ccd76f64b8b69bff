# MetricContainer refuses metrics that are not a list.
from _observe import attempt, done
from mlpipeline.utils import MetricContainer

attempt("string", lambda: MetricContainer("a"), TypeError)
attempt("tuple", lambda: MetricContainer(("a", "b")), TypeError)
attempt("dict", lambda: MetricContainer({"metrics": ["a"]}), TypeError)
done()
