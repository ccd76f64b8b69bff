from setuptools import Extension, find_packages, setup

# log_metric's point taker in C (mlpipeline/script/report.py has the same in Python): optional, so an install
# without a compiler still works, on the Python one
POINTS = Extension("mlpipeline.script._points", ["mlpipeline/script/_points.c"], optional=True)

setup(
    name="mlpipeline",
    version="3.0.0.dev0",
    description="Run every version of your model scripts: a smoke test, then a queued batch that keeps going.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["mlpipeline", "mlpipeline.*"]),
    package_data={"mlpipeline.web": ["templates/*.html", "static/*.js", "static/*.css"]},
    ext_modules=[POINTS],
    python_requires=">=3.9",
    install_requires=["numpy", "watchdog", "tabulate", "psutil"],
    extras_require={
        "tf": [
            "tensorflow-cpu>=2.13; platform_machine == 'x86_64' or platform_machine == 'AMD64'",
            "tensorflow>=2.13; platform_machine != 'x86_64' and platform_machine != 'AMD64'",
            "tensorboard",
        ],
        # the dashboard (mlpipeline serve): Starlette + uvicorn + Jinja2; plotly only for its plotly.min.js
        "ray": ["ray>=2.10"],
        # mlpipeline.data: CSVLoader reads with pandas when it is there; to_torch (CPU build: keep it pinned)
        "data": ["pandas"],
        "torch": ["torch==2.13.0"],
        # mlpipeline.sweeps.optuna_search: a search driven by an Optuna study; scikit-learn for the fANOVA of
        # mlpipeline importance and the search page (without it they rank by binned variance)
        "optuna": ["optuna>=3.4", "scikit-learn"],
        # mlpipeline.integrations: the Lightning logger and the Hugging Face callback (tensorboard: a plain
        # script's TensorBoard scalars read into the ledger)
        "integrations": ["lightning>=2.1", "transformers>=4.41", "accelerate>=1.1", "tensorboard"],
        # NVML for the runner's sys/gpu_* curves (GPU memory by process, utilisation): without it, none are kept
        "gpu": ["nvidia-ml-py"],
        "web": ["starlette>=0.37", "uvicorn>=0.29", "jinja2>=3.1", "plotly>=5"],
        # [NOTIFY] in mlp.config: messages to Slack, e-mail, webhooks and ~100 more services through apprise
        "notify": ["apprise>=1.6"],
        # [MLFLOW] tracking_uri in mlp.config: each run also logged to MLflow (the client alone, no server or UI)
        "mlflow": ["mlflow-skinny>=2"],
        # (the full mlflow: tests/test_mlflow_log.py runs a real `mlflow server`)
        "dev": ["pytest>=7", "pytest-xdist>=3", "hypothesis", "ruff", "mypy", "playwright>=1.40", "aiosmtpd", "mlflow>=2"],
    },
    entry_points={"console_scripts": ["mlpipeline=mlpipeline.cli:main"]},
)
