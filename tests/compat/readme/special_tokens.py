# log_special_tokens and use_mlflow (False: this observation runs without mlflow installed).
from _observe import record, done
from mlpipeline.utils import log_special_tokens, use_mlflow

record("tokens", dict(log_special_tokens))
record("attr", log_special_tokens.MODEL_TRAINED)
record("use_mlflow", use_mlflow)
done()
