"""Small recordings made on the fly with PyAV (the appliance's own decoder's library)."""

from __future__ import annotations

import io

import av
import numpy as np

FORMATS = {  # name: (container format, codec, sample rate)
    "wav": ("wav", "pcm_s16le", 16000),
    "mp3": ("mp3", "libmp3lame", 16000),
    "m4a": ("ipod", "aac", 16000),
    "ogg": ("ogg", "libopus", 48000),
    "webm": ("webm", "libopus", 48000),
}


def make_audio(kind: str = "wav", seconds: float = 2.0, amplitude: int = 8000) -> bytes:
    container_format, codec, rate = FORMATS[kind]
    samples = int(seconds * rate)
    tone = (np.sin(np.arange(samples) * 2 * np.pi * 220 / rate) * amplitude).astype(np.int16)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container_format) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        frame_size = 960 if codec == "libopus" else 1024
        for start in range(0, samples, frame_size):
            piece = tone[start : start + frame_size]
            frame = av.AudioFrame.from_ndarray(piece.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()
