"""Defining a campaign: publish CampaignDefined, unless a wave has opened (then it is frozen).

The campaign subject holds every version; the new one is numbered after the last one on the
log (or the file's own version, if higher). Amending is refused once any WaveOpened exists:
people have started answering against that methodology. The check reads the log itself, not
a projection, so a CLI on an operator's laptop decides the same way as the admin API.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts import subjects
from contracts.campaign import Campaign
from contracts.events import CampaignDefined, decode, make
from parindex.bus.publish import last_on_subject, publish_event


class CampaignFrozen(Exception):
    def __init__(self, campaign_id: str) -> None:
        super().__init__("campaign is frozen after its first wave")
        self.campaign_id = campaign_id


async def wave_opened(js: JetStreamContext, campaign_id: str) -> bool:
    """True if any WaveOpened of the campaign is on the log."""
    try:
        info = await js.stream_info(
            subjects.EVENTS_STREAM, subjects_filter=subjects.wave(campaign_id, "*")
        )
    except NotFoundError:
        return False
    return bool(info.state.subjects)


async def last_version(js: JetStreamContext, campaign_id: str) -> int:
    """The version of the newest CampaignDefined (0 if none), read from the log."""
    subject = subjects.campaign(campaign_id)
    info = await js.stream_info(subjects.EVENTS_STREAM, subjects_filter=subject)
    if not info.state.subjects:
        return 0
    msg = await js.get_last_msg(subjects.EVENTS_STREAM, subject)
    # After a CampaignClosed, the message count is a safe lower bound for the next version.
    try:
        _, payload = decode(msg.data or b"")
    except Exception:
        return info.state.subjects.get(subject, 0)
    if isinstance(payload, CampaignDefined):
        return payload.campaign.version
    return info.state.subjects.get(subject, 0)


async def define_campaign(
    js: JetStreamContext, campaign: Campaign, *, producer: str = "survey"
) -> Campaign:
    """Publish the campaign as its next version; CampaignFrozen once a wave has opened."""
    if await wave_opened(js, campaign.id):
        raise CampaignFrozen(campaign.id)
    version = max(campaign.version, await last_version(js, campaign.id) + 1)
    campaign = campaign.model_copy(update={"version": version})
    subject = subjects.campaign(campaign.id)
    last = await last_on_subject(js, subject)
    await publish_event(
        js,
        subject,
        make(CampaignDefined(campaign=campaign), campaign_id=campaign.id, producer=producer),
        # Two admins saving at once: the second is told, not silently overwritten.
        expected_last_subject_seq=last[0] if last else 0,
    )
    return campaign
