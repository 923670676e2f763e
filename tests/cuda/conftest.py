"""CUDA backend tests, run in numba-cuda's simulator, in their own pytest process:

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda

numba reads NUMBA_ENABLE_CUDASIM once, when it is first imported, so setting it from
here would be too late whenever something imported numba earlier in the process (the
main test run does). These tests therefore run only when the variable was already
"1" as the process started, and are skipped, with that command as the reason, otherwise.
"""

from __future__ import annotations

import os
import sys

import pytest

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
REASON = "CUDA simulator tests run in their own process: NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda"

if SIMULATOR:
    # The simulator runs one Python thread per CUDA thread and its block manager polls them
    # while holding the GIL; a short switch interval makes every __syncthreads() much cheaper.
    sys.setswitchinterval(0.0005)


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.cudasim)
            if not SIMULATOR:
                item.add_marker(pytest.mark.skip(reason=REASON))
