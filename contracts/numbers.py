"""The number types of the log: every integer and decimal has a range.

The log is append-only, so a number no reader can hold (a quota of 10^30, a sequence past
2^53 that a JavaScript client rounds, a negative count) would be kept forever
(docs/architecture.md, decision 17). Every int and Decimal field of the envelope, the payloads
and the campaign is one of these types or carries its own `ge`/`le`; a unit test walks the
published JSON Schemas and fails on a number without both bounds.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field

# The largest integer every JSON reader holds exactly (an IEEE double: JavaScript, jq, ...).
SAFE_INT_MAX = 2**53 - 1
QUOTA_MAX = 1_000_000  # ballots: a province has far fewer respondents
COUNT_MAX = 1_000_000_000  # ballots received, delivery attempts: counted, never typed
POINTS_MAX = 1000  # a question's or criterion's maximum points
DECIMAL_PLACES_MAX = 10
SCHEMA_VERSION_MAX = 1000

Sequence = Annotated[int, Field(ge=0, le=SAFE_INT_MAX)]  # a JetStream stream sequence
Count = Annotated[int, Field(ge=0, le=COUNT_MAX)]
QuotaCount = Annotated[int, Field(ge=0, le=QUOTA_MAX)]
PositiveQuota = Annotated[int, Field(ge=1, le=QUOTA_MAX)]
Rank = Annotated[int, Field(ge=1, le=COUNT_MAX)]
SchemaVersion = Annotated[int, Field(ge=1, le=SCHEMA_VERSION_MAX)]
Year = Annotated[int, Field(ge=2000, le=2100)]
CampaignVersion = Annotated[int, Field(ge=1, le=QUOTA_MAX)]
ReportSize = Annotated[int, Field(ge=1, le=QUOTA_MAX)]
OffsetDays = Annotated[int, Field(ge=0, le=366)]  # reminder n days before the deadline
Places = Annotated[int, Field(ge=0, le=6)]
Points = Annotated[
    Decimal,
    Field(gt=0, le=POINTS_MAX, decimal_places=DECIMAL_PLACES_MAX, allow_inf_nan=False),
]
Weight = Annotated[
    Decimal, Field(ge=0, le=1, decimal_places=DECIMAL_PLACES_MAX, allow_inf_nan=False)
]
