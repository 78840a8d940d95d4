"""The pyannote.audio backend, run for real through `PyannoteDiarizer` on real speech.

The real `speaker-diarization-community-1` weights are gated on the hub and cannot be fetched
here, so the test builds the folder a clinic would copy, with the same layout, config keys and
architectures (PyanNet powerset segmentation, WeSpeaker ResNet34 embedding, VBx clustering with
a PLDA), but randomly initialised and shrunk to run on two CPU cores. The checkpoints are
written in the format pyannote's `Model.from_pretrained` reads, so loading, inference,
clustering and the conversion to `SpeakerTurn` are the production code paths; only the weights
are fake, so the test checks the shape of the output, never its accuracy.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from appliance.pipeline.diarize_pyannote import PyannoteDiarizer, PyannoteModelMissing
from appliance.pipeline.speech import SAMPLE_RATE, SpeakerTurn

# community-1's config.yaml, with a shorter segmentation window (5 s, below) and a longer step
# (community-1: 10 s and 0.1), so the ResNet34 embeddings of 30 s take seconds on two cores.
CONFIG = """\
dependencies:
  pyannote.audio: 4.0.0
pipeline:
  name: pyannote.audio.pipelines.SpeakerDiarization
  params:
    clustering: VBxClustering
    embedding: $model/embedding
    embedding_batch_size: 32
    embedding_exclude_overlap: true
    plda: $model/plda
    segmentation: $model/segmentation
    segmentation_batch_size: 32
    segmentation_step: 0.5
params:
  clustering:
    threshold: 0.6
    Fa: 0.07
    Fb: 0.8
  segmentation:
    min_duration_off: 0.0
"""


def _save_checkpoint(model: Any, folder: Path) -> None:
    """What a lightning Trainer checkpoint holds that `Model.from_pretrained` needs: weights,
    constructor hyper-parameters, and pyannote's own block (version, class, specifications),
    which the model's `on_save_checkpoint` writes."""
    import lightning
    import torch

    checkpoint: dict[str, Any] = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": lightning.__version__,
    }
    model.on_save_checkpoint(checkpoint)
    folder.mkdir(parents=True)
    torch.save(checkpoint, folder / "pytorch_model.bin")


def build_pipeline_folder(folder: Path) -> None:
    import torch
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import WeSpeakerResNet34
    from pyannote.audio.models.segmentation import PyanNet

    torch.manual_seed(0)
    segmentation = PyanNet(
        lstm={"hidden_size": 32, "num_layers": 1}, linear={"hidden_size": 32, "num_layers": 1}
    )
    segmentation.specifications = Specifications(
        problem=Problem.MONO_LABEL_CLASSIFICATION,
        resolution=Resolution.FRAME,
        duration=5.0,
        min_duration=5.0,
        classes=["speaker#1", "speaker#2", "speaker#3"],
        powerset_max_classes=2,
        permutation_invariant=True,
    )
    segmentation.build()
    with torch.no_grad():  # powerset class 0 is "nobody speaks": make speech the norm
        segmentation.classifier.bias[0] = -5.0
    _save_checkpoint(segmentation, folder / "segmentation")

    embedding = WeSpeakerResNet34(num_mel_bins=24)  # community-1: 80 mel bins
    embedding.specifications = Specifications(
        problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=5.0
    )
    _save_checkpoint(embedding, folder / "embedding")

    # A structurally valid PLDA of community-1's shapes (256-d x-vectors, 128-d LDA space):
    # an orthonormal projection, identity within-class and decreasing between-class variances.
    rng = np.random.default_rng(0)
    dimension, lda_dimension = 256, 128
    lda = np.linalg.qr(rng.standard_normal((dimension, dimension)))[0][:, :lda_dimension]
    (folder / "plda").mkdir()
    np.savez(
        folder / "plda" / "xvec_transform.npz",
        mean1=np.zeros(dimension),
        mean2=np.zeros(lda_dimension),
        lda=lda,
    )
    np.savez(
        folder / "plda" / "plda.npz",
        mu=np.zeros(lda_dimension),
        tr=np.eye(lda_dimension),
        psi=np.sort(rng.uniform(0.5, 5.0, lda_dimension))[::-1],
    )
    (folder / "config.yaml").write_text(CONFIG)


@pytest.fixture(scope="session")
def pipeline_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("pyannote.audio")
    folder = tmp_path_factory.mktemp("models") / "pyannote-community-1"
    build_pipeline_folder(folder)
    return folder


@pytest.fixture(scope="session")
def speech() -> Any:
    """pyannote's own 30 s two-speaker sample, decoded the way the appliance decodes."""
    pyannote_audio = pytest.importorskip("pyannote.audio")
    faster_whisper = pytest.importorskip("faster_whisper")
    path = Path(pyannote_audio.__file__).parent / "sample" / "sample.wav"
    return faster_whisper.decode_audio(str(path), sampling_rate=SAMPLE_RATE)


def _check_turns(turns: list[SpeakerTurn], duration: float) -> None:
    assert isinstance(turns, list)
    for turn in turns:
        assert isinstance(turn, SpeakerTurn)
        assert isinstance(turn.start, float)
        assert isinstance(turn.end, float)
        assert 0.0 <= turn.start < turn.end <= duration
        assert isinstance(turn.speaker, str)
        assert turn.speaker.startswith("SPEAKER_")
    assert [t.start for t in turns] == sorted(t.start for t in turns)


@pytest.mark.model
def test_diarizes_real_speech_from_a_local_folder(pipeline_folder: Path, speech: Any) -> None:
    diarizer = PyannoteDiarizer(pipeline_folder, device="cpu")
    assert diarizer.model_id == "pyannote/pyannote-community-1"
    duration = len(speech) / SAMPLE_RATE
    seen: list[float] = []

    turns = diarizer.diarize(speech, progress=seen.append)

    _check_turns(turns, duration)
    assert turns, "the segmentation model is biased towards speech"
    assert len(seen) > 2, "progress is reported during the run, not only at the end"
    assert seen == sorted(seen)
    assert all(0.0 <= s <= duration for s in seen)
    assert seen[-1] == pytest.approx(duration)


@pytest.mark.model
def test_speaker_bounds_are_passed_to_pyannote(pipeline_folder: Path, speech: Any) -> None:
    """Unbounded, these random weights find two speakers in this clip; the bounds decide."""
    clip = speech[: 10 * SAMPLE_RATE]

    at_most_one = PyannoteDiarizer(pipeline_folder, max_speakers=1).diarize(clip)
    at_least_three = PyannoteDiarizer(pipeline_folder, min_speakers=3).diarize(clip)

    _check_turns(at_most_one, 10.0)
    _check_turns(at_least_three, 10.0)
    assert {t.speaker for t in at_most_one} == {"SPEAKER_00"}
    assert {t.speaker for t in at_least_three} == {"SPEAKER_00", "SPEAKER_01", "SPEAKER_02"}


@pytest.mark.model
def test_short_and_empty_audio(pipeline_folder: Path) -> None:
    diarizer = PyannoteDiarizer(pipeline_folder)
    seen: list[float] = []

    _check_turns(diarizer.diarize(np.zeros(SAMPLE_RATE // 2, dtype=np.float32)), 0.5)
    assert diarizer.diarize(np.zeros(0, dtype=np.float32), progress=seen.append) == []
    assert seen == [0.0]


@pytest.mark.model
def test_a_3_1_style_config_loads_when_its_models_are_in_the_folder(
    pipeline_folder: Path, tmp_path: Path, speech: Any
) -> None:
    """speaker-diarization-3.1's config (`version:` key, agglomerative clustering), with its two
    hub ids rewritten to $model/ paths. pyannote 4 still loads a PLDA for it, so plda/ stays."""
    folder = tmp_path / "pyannote-3.1"
    shutil.copytree(pipeline_folder, folder)
    config = CONFIG.replace("dependencies:\n  pyannote.audio: 4.0.0", "version: 3.1.0")
    config = config.replace("VBxClustering", "AgglomerativeClustering")
    config = config.replace(
        "threshold: 0.6\n    Fa: 0.07\n    Fb: 0.8",
        "method: centroid\n    min_cluster_size: 12\n    threshold: 0.7045654963945799",
    )
    (folder / "config.yaml").write_text(config)

    _check_turns(PyannoteDiarizer(folder).diarize(speech[: 5 * SAMPLE_RATE]), 5.0)


@pytest.mark.model
@pytest.mark.parametrize(
    ("breakage", "old", "new"),
    [
        ("embedding not copied", "", ""),
        ("hub id, as in 3.1", "$model/embedding", "pyannote/wespeaker-voxceleb-resnet34-LM"),
        ("no plda (4.x then fetches community-1's)", "    plda: $model/plda\n", ""),
    ],
)
def test_an_incomplete_folder_never_reaches_the_hub(
    pipeline_folder: Path, tmp_path: Path, breakage: str, old: str, new: str
) -> None:
    folder = tmp_path / "pyannote-broken"
    shutil.copytree(pipeline_folder, folder)
    if old:
        config = folder / "config.yaml"
        assert old in config.read_text()
        config.write_text(config.read_text().replace(old, new))
    else:
        shutil.rmtree(folder / "embedding")

    with pytest.raises(PyannoteModelMissing, match="'pyannote-broken' is incomplete"):
        PyannoteDiarizer(folder).diarize(np.zeros(SAMPLE_RATE, dtype=np.float32))


def test_a_missing_folder_fails_clearly_without_loading_torch(tmp_path: Path) -> None:
    """Checked before pyannote (and torch) are imported: a worker with no model installed
    fails in milliseconds with a message clinic IT can act on."""
    (tmp_path / "no-config").mkdir()
    code = (
        "import sys, numpy as np\n"
        "from pathlib import Path\n"
        "from appliance.pipeline.diarize_pyannote import PyannoteDiarizer, PyannoteModelMissing\n"
        f"root = Path({str(tmp_path)!r})\n"
        "for folder in (root / 'absent', root / 'no-config'):\n"
        "    try:\n"
        "        PyannoteDiarizer(folder).diarize(np.zeros(16000, dtype=np.float32))\n"
        "    except PyannoteModelMissing as exc:\n"
        "        print(exc)\n"
        "print('torch' in sys.modules, 'pyannote' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    absent, no_config, loaded = result.stdout.strip().splitlines()
    assert absent.startswith("diarization model 'absent' is not installed: config.yaml not found")
    assert no_config.startswith("diarization model 'no-config' is not installed")
    assert loaded == "False False"
