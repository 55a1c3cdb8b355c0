"""`parindex.bus.pull.stream_seq` and `pending` read what nats-py's metadata reads. No servers."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg

from parindex.bus.pull import pending, stream_seq

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "reply",
    [
        "$JS.ACK.PARINDEX.cons1.1.4711.12.1764036000000000000.99",  # the usual form
        "$JS.ACK.dom.acc.PARINDEX.cons1.1.4711.12.1764036000000000000.99.tok",  # with a domain
        "$JS.ACK._.acc.PARINDEX.cons1.2.4711.13.1764036000000000000.0.tok.x",  # longer forms
    ],
)
def test_stream_seq_is_the_metadata_stream_sequence(reply: str) -> None:
    msg = Msg(None, subject="par.evt.c.ballot.x", reply=reply, data=b"{}")  # type: ignore[arg-type]  # no client needed
    assert stream_seq(msg) == msg.metadata.sequence.stream == 4711
    assert pending(msg) == msg.metadata.num_pending
