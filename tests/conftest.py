"""Shared test set-up: Hypothesis profiles.

`dev` (default) keeps runs quick; `ci` is what .ci/run selects
(HYPOTHESIS_PROFILE=ci): more examples, no deadlines (2 shared cores are noisy).
"""

import os

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
