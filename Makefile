# The two quick-start commands:
#   make sample  installs mlpipeline (with TensorFlow) and runs the Keras sample in execution mode
#   make test    installs mlpipeline with its test tools and runs the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: sample test install bench clean

$(PY):
	@echo "==> creating the virtual environment $(VENV)/"
	$(PYTHON) -m venv $(VENV)

install: $(PY)
	@echo "==> installing mlpipeline with TensorFlow and the test tools into $(VENV)/ (a few minutes on a fresh machine)"
	$(PIP) install --progress-bar off -e '.[tf,dev]'
	@# bytecode for the editable package: read even where PYTHONDONTWRITEBYTECODE is set,
	@# so every version's child process skips compiling mlpipeline from source
	$(PY) -m compileall -q mlpipeline

sample: install
	@echo "==> training the Keras sample project: mlpipeline -r -u (run it again and nothing retrains)"
	$(VENV)/bin/mlpipeline -r -u

test: install
	@echo "==> lint (ruff), types (mypy), then the whole test suite (pytest)"
	$(PY) -m ruff check mlpipeline tests bench
	$(PY) -m mypy
	$(PY) -m pytest tests -q

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info examples/sample-project/models/outputs
