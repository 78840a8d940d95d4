"""GPU memory per device, for `/metrics`, without importing torch into the web process.

nvidia-smi reports every process's use of the device (the workers' and `appliance llm`'s, not
just ours); when it is missing, torch is asked only if this process already imported it and
initialised CUDA. No GPU: no figures, and the metric is left out.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

MIB = 1024 * 1024
CACHE_SECONDS = 10.0  # a scrape every few seconds must not fork nvidia-smi every time


@dataclass(frozen=True)
class GpuMemory:
    device: str
    used_bytes: int
    total_bytes: int


_lock = threading.Lock()
_cached: tuple[float, tuple[GpuMemory, ...]] | None = None


def parse_nvidia_smi(output: str) -> tuple[GpuMemory, ...]:
    """`index, memory.used, memory.total` in MiB, one GPU a line (csv, noheader, nounits)."""
    found = []
    for line in output.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            continue  # "[N/A]" on some MIG setups, or a warning line
        found.append(GpuMemory(parts[0], int(parts[1]) * MIB, int(parts[2]) * MIB))
    return tuple(found)


def _from_nvidia_smi(binary: str) -> tuple[GpuMemory, ...]:
    try:
        out = subprocess.run(
            [binary, "--query-gpu=index,memory.used,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return ()
    return parse_nvidia_smi(out)


def _from_torch() -> tuple[GpuMemory, ...]:
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return ()
    found = []
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        found.append(GpuMemory(str(index), int(total - free), int(total)))
    return tuple(found)


def gpu_memory(nvidia_smi: str | None = None) -> tuple[GpuMemory, ...]:
    """Every visible GPU's memory, cached for a few seconds."""
    global _cached
    with _lock:
        if _cached is not None and time.monotonic() - _cached[0] < CACHE_SECONDS:
            return _cached[1]
        binary = nvidia_smi or shutil.which("nvidia-smi")
        found = _from_nvidia_smi(binary) if binary else ()
        found = found or _from_torch()
        _cached = (time.monotonic(), found)
        return found
