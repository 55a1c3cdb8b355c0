"""The service layer's dependencies taken from the running service: the adapters' one bridge.

api.py, web.py and rpc.py call `deps(rt)` and hand the result to the use cases, which never
see a Runtime, a Request or an app (docs/architecture.md, decision 31).
"""

from __future__ import annotations

from parindex.clock import clock_from_settings
from parindex.db.campaigns import ByRowVersion
from parindex.web.service import Runtime
from services.survey.ballots import Deps


def deps(rt: Runtime) -> Deps:
    clock = rt.extras.setdefault("clock", clock_from_settings(rt.settings))
    campaigns = rt.extras.setdefault("campaigns", ByRowVersion())  # parsed once per instance
    return Deps(
        js=rt.js,
        sessions=rt.sessions,
        reads=rt.extras["reads"],
        ballot_key=rt.settings.ballot_key,
        clock=clock,
        campaigns=campaigns,
        drafts=rt.extras.get("drafts"),
        deadlines=rt.extras["deadlines"],  # made once at start (service.py)
        intake=rt.extras.get("intake"),  # who is asking, from memory (decision 49)
    )
