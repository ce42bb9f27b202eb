"""Prints the pip options that pick the right torch build for this machine (``make install`` uses it).

PyPI's Linux torch wheels are the CUDA build (several GB). Machines without a CUDA device get the
CPU build from PyTorch's CPU wheel index instead, given to pip as an extra index; CUDA machines
get PyPI's build. The index is probed first: where it cannot be reached (an offline machine whose
pip finds torch on disk, a mirror-only network) pip is not sent to it, so the install neither
fails nor spends minutes on retries.

Usage: python ops/tools/torch_index.py [INDEX]
    INDEX  "auto" (default): the CPU index when no CUDA device is present, else none;
           "none" or "": no extra index;
           a URL: that index (e.g. https://download.pytorch.org/whl/cu128), probed the same way.

Only the standard library: it runs before the virtual environment exists.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.error
import urllib.request

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PROBE_TIMEOUT_S = 5.0


def has_cuda_device() -> bool:
    """Whether the NVIDIA driver lists at least one GPU (``nvidia-smi -L``)."""
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return listing.returncode == 0 and "GPU" in listing.stdout


def reachable(index: str) -> bool:
    """Whether the index answers for torch within a few seconds."""
    try:
        with urllib.request.urlopen(f"{index.rstrip('/')}/torch/", timeout=PROBE_TIMEOUT_S) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


def choose(index: str) -> str | None:
    """The index to pass to pip, or None; explains the choice on stderr."""
    if index in ("", "none"):
        return None
    if index == "auto":
        if has_cuda_device():
            print("torch: a CUDA device is present: PyPI's CUDA build", file=sys.stderr)
            return None
        index = CPU_INDEX
    if not reachable(index):
        print(f"torch: {index} cannot be reached: installing torch from pip's configured indexes "
              "(on a machine without a GPU that may be the CUDA build: see README, 'Installing')", file=sys.stderr)
        return None
    print(f"torch: from {index} (extra index)", file=sys.stderr)
    return index


def main(argv: list[str]) -> int:
    """Prints ``--extra-index-url URL`` or nothing."""
    index = choose(argv[1] if len(argv) > 1 else "auto")
    if index:
        print(f"--extra-index-url {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
