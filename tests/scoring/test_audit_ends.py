"""`parindex audit` of a campaign whose results are not published yet ends, whatever the other
campaigns on the log do: the replay reads the campaign's own subjects only, so it must stop at
the campaign's last event, not wait for the stream's last sequence (another campaign's)."""

from __future__ import annotations

import pytest

from parindex.settings import Settings
from services.scoring.audit import audit
from tests.scoring.test_method import WORKED_DIGEST
from tests.scoring.test_service import publish_worked


@pytest.mark.timeout(60)
async def test_the_audit_of_an_open_campaign_ends_while_another_goes_on(
    nc, nats_url: str, pg_url: str, campaign_id: str, tmp_path
) -> None:
    js = nc.jetstream()
    await publish_worked(js, campaign_id)
    await publish_worked(js, f"{campaign_id}-practice")  # later on the log
    settings = Settings(nats_url=nats_url, database_url=pg_url, state_dir=tmp_path)
    report = await audit(nc, settings, campaign_id, compare_live=False)
    assert report.digest == WORKED_DIGEST and report.ok, report.render()
