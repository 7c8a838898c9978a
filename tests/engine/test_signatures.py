"""Standard Webhooks v1 interoperability (issue 19, point 1): the server's signer and the
client's verify helper reproduce the specification's published test vector
(standard-webhooks/spec, the example every reference library tests against), so any
Standard Webhooks library verifies Sluice's deliveries and the helper verifies theirs."""

from __future__ import annotations

import pytest

import sluice
from sluice.engine.signatures import is_valid, new_secret, sign, signature_header

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def _headers(signature: str, timestamp: int = TIMESTAMP) -> dict[str, str]:
    return {"webhook-id": MSG_ID, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature}  # fmt: skip


def test_the_signer_reproduces_the_specifications_vector() -> None:
    assert is_valid(SECRET)  # 24 bytes: the smallest key the specification allows
    assert sign(SECRET, MSG_ID, TIMESTAMP, BODY) == SIGNATURE
    # During a rotation every key signs, space separated, in the order given.
    other = new_secret()
    both = signature_header([other, SECRET], MSG_ID, TIMESTAMP, BODY).split(" ")
    assert both[1] == SIGNATURE and both[0] != SIGNATURE and both[0].startswith("v1,")


def test_the_client_helper_verifies_the_specifications_vector() -> None:
    assert sluice.verify_webhook(SECRET, _headers(SIGNATURE), BODY, now=TIMESTAMP) == {
        "test": 2432232314
    }
    # Among other signatures (a rotation, an unknown scheme), with either key listed.
    header = f"v1a,bm9wZQ== v1,AAAA {SIGNATURE}"
    assert sluice.verify_webhook([new_secret(), SECRET], _headers(header), BODY,
                                 now=TIMESTAMP + 299)  # fmt: skip
    with pytest.raises(sluice.InvalidSignature):  # too old, then too far ahead
        sluice.verify_webhook(SECRET, _headers(SIGNATURE), BODY, now=TIMESTAMP + 301)
    with pytest.raises(sluice.InvalidSignature):
        sluice.verify_webhook(SECRET, _headers(SIGNATURE), BODY, now=TIMESTAMP - 301)
    with pytest.raises(sluice.InvalidSignature):  # the id is signed
        sluice.verify_webhook(SECRET, {**_headers(SIGNATURE), "webhook-id": "msg_other"},
                              BODY, now=TIMESTAMP)  # fmt: skip
    with pytest.raises(sluice.InvalidSignature):  # so is the timestamp
        sluice.verify_webhook(SECRET, _headers(SIGNATURE, TIMESTAMP + 1), BODY,
                              now=TIMESTAMP)  # fmt: skip
