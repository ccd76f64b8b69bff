# The two quick-start commands:
#   make sample  installs mlpipeline (with TensorFlow) and runs the Keras sample in execution mode
#   make test    installs mlpipeline with its test tools and runs the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: sample test install bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

install: $(PY)
	$(PIP) install -e '.[tf,dev]'
	# bytecode for the editable package: read even where PYTHONDONTWRITEBYTECODE is set,
	# so every version's child process skips compiling mlpipeline from source
	$(PY) -m compileall -q mlpipeline

sample: install
	$(VENV)/bin/mlpipeline -r -u

test: install
	$(PY) -m pytest tests -q

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info examples/sample-project/models/outputs
