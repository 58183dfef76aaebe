"""What the property tests share (tests/test_filter_properties.py,
tests/test_patch_properties.py): Hypothesis settings, derandomized by default so CI never
flakes. A longer or a random run:

    SCIM_BRIDGE_PROPERTY_EXAMPLES=2000 pytest tests/test_*_properties.py
    SCIM_BRIDGE_PROPERTY_SEED=random pytest tests/test_*_properties.py
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"

EXAMPLES = int(os.environ.get("SCIM_BRIDGE_PROPERTY_EXAMPLES", "100"))
SEED = os.environ.get("SCIM_BRIDGE_PROPERTY_SEED", "")

#: A filter or PATCH operation as the strategies build it: a tagged tuple.
Node = tuple[Any, ...]


def property_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=SEED != "random",
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
