# The quick-start commands:
#   make sample  installs mlpipeline (with TensorFlow) and runs the Keras sample in execution mode
#   make test    installs mlpipeline with its test tools and runs the whole test suite
#   make browser installs Debian's chromium (apt) for the browser tests in tests/web
#   make slurm   installs Debian's slurmctld, slurmd and munge (apt) for the one-node Slurm of tests/slurm
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: sample test install browser slurm bench clean

$(PY):
	@echo "==> creating the virtual environment $(VENV)/"
	$(PYTHON) -m venv $(VENV)

install: $(PY)
	@echo "==> installing mlpipeline with TensorFlow, the dashboard and the test tools into $(VENV)/ (a few minutes on a fresh machine)"
	$(PIP) install --progress-bar off -e '.[tf,web,ray,data,torch,optuna,integrations,notify,mlflow,dev]'
	@# bytecode for the editable package: read even where PYTHONDONTWRITEBYTECODE is set,
	@# so every version's child process skips compiling mlpipeline from source
	$(PY) -m compileall -q mlpipeline

sample: install
	@echo "==> training the Keras sample project: mlpipeline -r -u (run it again and nothing retrains)"
	$(VENV)/bin/mlpipeline -r -u
	@echo ""
	@echo "==> next: put mlpipeline on your PATH (in each new shell), then look at what ran"
	@echo "    source $(VENV)/bin/activate"
	@echo "    mlpipeline runs                    # every run in the ledger"
	@echo "    mlpipeline compare sample_model    # the three versions side by side"
	@echo "    mlpipeline serve                   # the same in a browser: runs, curves, compare, the live queue"
	@echo "    mlpipeline init myproject && cd myproject && mlpipeline && mlpipeline -r -u   # your own project"

test: install browser slurm
	@echo "==> lint (ruff), types (mypy), then the whole test suite (pytest)"
	$(PY) -m ruff check mlpipeline tests bench
	$(PY) -m mypy
	@# two workers, each taking whole modules (their module-scoped clusters and servers stay one each): most
	@# tests wait on child processes, so two at once on two cores take about half the time
	$(PY) -m pytest tests -q -n 2 --dist loadscope

# The browser tests drive /usr/bin/chromium (Debian's package) through Playwright; they fail, naming this
# target, where it is missing. apt needs root: sudo is used where we are not root and it exists.
browser:
	@test -x /usr/bin/chromium || { \
	  echo "==> installing Debian's chromium for the browser tests (tests/web)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "make browser: apt-get needs root and there is no sudo; as root run: apt-get install chromium" >&2; exit 1; fi; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The Slurm tests start a one-node Slurm of their own (tests/slurm/cluster.py) from Debian's packages, as root.
slurm:
	@test -x /usr/sbin/slurmctld && test -x /usr/sbin/slurmd && test -x /usr/bin/sbatch && test -x /usr/sbin/munged || { \
	  echo "==> installing Debian's slurmctld, slurmd and munge for the Slurm tests (tests/slurm)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "make slurm: apt-get needs root and there is no sudo; as root run: apt-get install slurmctld slurmd slurm-client munge" >&2; exit 1; fi; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge; }

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info examples/sample-project/models/outputs
