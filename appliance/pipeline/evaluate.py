"""Accuracy on a clinic's own consented test set: WER against a reference text (jiwer) and
DER against a reference RTTM (pyannote.metrics), with the backends the settings configure.

Both normalise the way the literature does: WER lower-cases and strips punctuation before
comparing words; DER is pyannote.metrics' at its defaults (no forgiveness collar, overlapped
speech scored) unless a collar is asked for.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from appliance.errors import Invalid
from appliance.settings import Settings

_WORD = re.compile(r"[^\w\s']+")


def normalise(text: str) -> str:
    return " ".join(_WORD.sub(" ", text.lower()).replace("'", "").split())


def word_error_rate(reference: str, hypothesis: str) -> dict[str, Any]:
    import jiwer

    ref, hyp = normalise(reference), normalise(hypothesis)
    if not ref:
        raise Invalid("the reference text has no words")
    out = jiwer.process_words(ref, hyp)
    return {
        "wer": round(float(out.wer), 4),
        "reference_words": len(ref.split()),
        "substitutions": out.substitutions,
        "deletions": out.deletions,
        "insertions": out.insertions,
    }


def read_rttm(path: Path) -> tuple[list[tuple[float, float, str]], str | None]:
    """(start, end, speaker) rows of an RTTM file, and its file id."""
    rows, uri = [], None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] != "SPEAKER":
            continue
        try:
            start, duration = float(fields[3]), float(fields[4])
        except (IndexError, ValueError):
            raise Invalid(f"{path.name} line {number} is not an RTTM SPEAKER line") from None
        rows.append((start, start + duration, fields[7]))
        uri = fields[1]
    if not rows:
        raise Invalid(f"{path.name} has no SPEAKER lines")
    return rows, uri


def diarization_error_rate(
    reference: list[tuple[float, float, str]],
    hypothesis: list[tuple[float, float, str]],
    collar: float = 0.0,
) -> dict[str, Any]:
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    def annotation(rows: list[tuple[float, float, str]]) -> Any:
        result = Annotation()
        for index, (start, end, speaker) in enumerate(rows):
            result[Segment(start, end), index] = speaker
        return result

    metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
    # Scored over the whole file: from 0 to the last second either side mentions.
    uem = Timeline([Segment(0.0, max(end for _, end, _ in [*reference, *hypothesis]))])
    details = metric(annotation(reference), annotation(hypothesis), uem=uem, detailed=True)
    total = details["total"] or 1.0
    return {
        "der": round(float(details["diarization error rate"]), 4),
        "false_alarm": round(details["false alarm"] / total, 4),
        "missed": round(details["missed detection"] / total, 4),
        "confusion": round(details["confusion"] / total, 4),
        "collar": collar,
        "speakers_reference": len({s for *_, s in reference}),
        "speakers_found": len({s for *_, s in hypothesis}),
    }


def eval_asr(settings: Settings, audio_path: Path, reference_path: Path) -> dict[str, Any]:
    from appliance.pipeline.backends import decode, transcriber_for

    reference = reference_path.read_text()
    with audio_path.open("rb") as source:
        audio = decode(source)
    transcriber = transcriber_for(settings)
    info, segments = transcriber.transcribe(audio)
    hypothesis = " ".join(segment.text for segment in segments)
    return {
        **word_error_rate(reference, hypothesis),
        "language": info.language,
        "model": transcriber.model_id,
    }


def eval_diarization(
    settings: Settings, audio_path: Path, rttm_path: Path, collar: float = 0.0
) -> dict[str, Any]:
    from appliance.pipeline.backends import decode, diarizer_for

    reference, _ = read_rttm(rttm_path)
    with audio_path.open("rb") as source:
        audio = decode(source)
    diarizer = diarizer_for(settings)
    turns = diarizer.diarize(audio)
    hypothesis = [(t.start, t.end, t.speaker) for t in turns]
    return {**diarization_error_rate(reference, hypothesis, collar), "model": diarizer.model_id}
