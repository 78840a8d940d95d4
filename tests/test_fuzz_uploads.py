"""Hostile uploads (issue 10, item 2), the short form of `appliance soak fuzz`: both upload
endpoints, real PostgreSQL, the real decoder. No 5xx, RFC 7807 refusals, 2xx only for audio,
nothing left behind, each upload quick; and the decoder bombs found by the long form."""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path

import pytest
from sqlmodel import Session

from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.errors import Invalid
from appliance.recordings.probe import CorruptAudio, probe
from appliance.settings import Settings
from appliance.soak import hostile
from appliance.soak import hostile_media as media
from appliance.soak.hostile_run import leftovers, run_uploads
from tests.conftest import Browser, consented_session, signed_in

SHORT_FORM = 150
SEED = 20261122


def test_hostile_uploads_get_no_server_error_no_orphan_rows_or_files_and_bounded_time(
    session: Session,
    settings: Settings,
    people: dict[str, UserPublic],
    bob: PatientPublic,
    browser: Browser,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    session_id = str(consented_session(session, bob.id, people["alice"].id).id)
    client, csrf = signed_in(browser, "alice@clinic.example")
    items = hostile.generate(SHORT_FORM, SEED)
    assert {item.category for item in items} >= {
        "zip bomb",
        "decoder bomb",
        "multipart abuse",
        "non-audio container",
        "huge declared length",
    }

    figures = run_uploads(client, csrf, session_id, items)

    assert figures.server_errors == []
    assert figures.wrong_answers == []
    assert 0 < figures.accepted < SHORT_FORM  # the valid ones went in, the junk did not
    assert max(figures.seconds) < 15.0, figures.summary()
    session.expire_all()
    assert leftovers(session, settings.files_dir, private_tmp) == []


def test_the_same_seed_gives_the_same_hostile_uploads() -> None:
    first, second = hostile.generate(28, 7), hostile.generate(28, 7)
    assert first == second
    assert first != hostile.generate(28, 8)


@pytest.mark.parametrize(
    "bomb",
    [
        pytest.param(lambda: media.id3_zlib_bomb(), id="mp3 with a zlib-compressed ID3 frame"),
        pytest.param(
            lambda: media.wav_with_chunk(
                b"id3 ", media.id3_zlib_bomb()[: -len(media.sample("mp3"))]
            ),
            id="wav with a compressed ID3 chunk after the samples",
        ),
        pytest.param(lambda: media.flac_silence(655350, 600), id="FLAC at 655 kHz"),
        pytest.param(lambda: media.flac_silence(8000, 4.1 * 3600), id="FLAC past the cap"),
    ],
)
def test_decoder_bombs_are_refused_in_bounded_time(bomb: object) -> None:
    """A few hundred KB that FFmpeg would inflate to gigabytes or decode for minutes."""
    body = bomb()  # type: ignore[operator]
    started = time.perf_counter()
    with pytest.raises((CorruptAudio, Invalid)):
        probe(io.BytesIO(body), body[:64], 240 * 60.0)
    assert time.perf_counter() - started < 5.0


def test_a_plain_id3_tag_in_front_of_valid_audio_still_decodes() -> None:
    body = media.id3(40, b"TIT2\x00\x00\x00\x1e\x00\x00\x03" + b"t" * 29) + media.sample("mp3")
    assert probe(io.BytesIO(body), body[:64], 60.0).container == "mp3"


def test_chance_id3_bytes_inside_the_samples_do_not_refuse_valid_audio() -> None:
    """The tag scan must not refuse a recording whose samples happen to spell a tag header."""
    wav = media.sample("wav")
    chance = b"ID3\x04\x00\x00\x00\x00\x00\x30" + b"\x81\x92\xa3\xb4\x00\x00\x00\x10\xff\xff" * 4
    body = wav[:1000] + chance + wav[1000 + len(chance) :]
    assert probe(io.BytesIO(body), body[:64], 60.0).container == "wav"
