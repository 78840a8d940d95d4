"""The clinic appliance. Importing this package loads nothing heavy.

It does one thing at import: it forces the model libraries offline, before any of them can be
imported by any entry point (CLI, web, workers, tests). Hugging Face libraries otherwise try the
hub, and pyannote.audio 4 sends usage metrics by default. Nothing may leave the clinic.
"""

import os

__version__ = "0.1.0"

OFFLINE_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "PYANNOTE_METRICS_ENABLED": "0",
}
os.environ.update(OFFLINE_ENVIRONMENT)
