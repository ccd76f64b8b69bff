# Not a model script: records what the pipeline does to a model, one JSON file per version
# (observations/<script>__<version>.json under the folder mlpipeline runs in).
import json
import os


class Recorder:
    def __init__(self):
        self.events = []
        self.pending = []
        self.path = None

    def before_start(self, *event):
        """An event of the version about to start (e.g. clean_model_dir, called before pre_execution_hook)."""
        self.pending.append(list(event))

    def start(self, script, version_name):
        self.events, self.pending = self.pending, []
        os.makedirs("observations", exist_ok=True)
        self.path = os.path.join("observations", "{}__{}.json".format(os.path.basename(script), version_name))

    def add(self, *event):
        self.events.append(list(event))
        if self.path:
            with open(self.path, "w") as handle:
                json.dump(self.events, handle, indent=1)
