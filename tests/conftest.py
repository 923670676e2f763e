"""Shared test set-up: Hypothesis profiles.

`dev` (default) keeps runs quick; `ci` is what .ci/run selects
(HYPOTHESIS_PROFILE=ci): more examples, no deadlines (2 shared cores are noisy).
"""

import importlib.util
import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# The lower-bounds CI stage installs no torch: tests that compare with torch skip there, nothing else does.
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
