"""`appliance eval asr|diarization`: accuracy on a clinic's own consented test files."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.cli import data_dir_option, emit, json_option, main, one_line_errors, settings_for

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@main.group("eval")
def eval_group() -> None:
    """Measure transcription (WER) and diarization (DER) against references."""


@eval_group.command("asr")
@click.argument("audio", type=_FILE)
@click.argument("reference", type=_FILE)
@data_dir_option
@json_option
@one_line_errors
def eval_asr(audio: Path, reference: Path, data_dir: Path | None, as_json: bool) -> None:
    """Word error rate of the configured transcriber on AUDIO against REFERENCE (text)."""
    from appliance.pipeline.evaluate import eval_asr as measure

    result = measure(settings_for(data_dir), audio, reference)
    emit(
        result,
        as_json,
        f"WER {result['wer']:.1%} over {result['reference_words']} words "
        f"({result['substitutions']} substituted, {result['deletions']} deleted, "
        f"{result['insertions']} inserted) with {result['model']}",
    )


@eval_group.command("diarization")
@click.argument("audio", type=_FILE)
@click.argument("rttm", type=_FILE)
@click.option("--collar", type=click.FloatRange(0, 2), default=0.0, show_default=True)
@data_dir_option
@json_option
@one_line_errors
def eval_diarization(
    audio: Path, rttm: Path, collar: float, data_dir: Path | None, as_json: bool
) -> None:
    """Diarization error rate of the configured diarizer on AUDIO against RTTM."""
    from appliance.pipeline.evaluate import eval_diarization as measure

    result = measure(settings_for(data_dir), audio, rttm, collar)
    emit(
        result,
        as_json,
        f"DER {result['der']:.1%} (false alarm {result['false_alarm']:.1%}, missed "
        f"{result['missed']:.1%}, confusion {result['confusion']:.1%}); "
        f"{result['speakers_found']} speakers found, {result['speakers_reference']} in the "
        f"reference; {result['model']}",
    )
