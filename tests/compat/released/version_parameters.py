# version_parameters: every key name the released API defines.
from _observe import record, done
from mlpipeline.utils import version_parameters as p

names = ["NAME", "DATALOADER", "BATCH_SIZE", "EPOC_COUNT", "LEARNING_RATE", "MODEL_DIR_SUFFIX", "ORDER",
         "HOOKS", "CLASSES_COUNT", "CLASSES_OFFSET", "USE_ALL_CLASSES"]
record("version_parameters", {n: getattr(p, n) for n in names})
done()
