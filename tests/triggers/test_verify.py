from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from automations.errors import ConfigError, SignatureError
from automations.model import VerifyScheme
from automations.triggers.verify import (
    MAX_SIGNATURES,
    default_event_id,
    sign_openphone,
    sign_standard,
    verify_webhook,
)

STANDARD = VerifyScheme.STANDARD_WEBHOOKS
OPENPHONE = VerifyScheme.OPENPHONE
KEY = b"0123456789abcdef0123456789abcdef"
WHSEC = "whsec_" + base64.b64encode(KEY).decode()
OP_SECRET = base64.b64encode(b"openphone-signing-key-bytes").decode()
BODY = b'{"id": "EVc67ec998b35c41d388af50799aeeba3e", "type": "message.received"}'
NOW = 1_700_000_000.0


def _standard_headers(
    body: bytes = BODY, *, ts: int = int(NOW), msg_id: str = "msg_1", secret: str = WHSEC
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign_standard(secret, msg_id, ts, body),
    }


def _verify_standard(headers: dict[str, str], body: bytes = BODY, now: float = NOW) -> None:
    verify_webhook(STANDARD, secret=WHSEC, headers=headers, body=body, now=now)


def _reject(scheme: VerifyScheme, headers: dict[str, str], *, secret: str, **kw: object) -> str:
    with pytest.raises(SignatureError) as info:
        verify_webhook(scheme, secret=secret, headers=headers, body=BODY, now=NOW, **kw)  # type: ignore[arg-type]
    message = str(info.value)
    assert secret not in message
    return message


# --- Standard Webhooks -------------------------------------------------------------------------


def test_standard_webhooks_reference_vector() -> None:
    # The example from the Standard Webhooks specification / svix documentation.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signature = sign_standard(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": signature,
    }
    verify_webhook(STANDARD, secret=secret, headers=headers, body=body, now=1614265330 + 10)


def test_standard_valid_with_any_header_case() -> None:
    headers = {name.title(): value for name, value in _standard_headers().items()}
    _verify_standard(headers)


def test_standard_secret_without_prefix_is_accepted() -> None:
    raw = base64.b64encode(KEY).decode()
    verify_webhook(STANDARD, secret=raw, headers=_standard_headers(), body=BODY, now=NOW)


def test_standard_forged_body() -> None:
    headers = _standard_headers()
    with pytest.raises(
        SignatureError, match=r"^webhook-signature does not match the body$"
    ) as info:
        _verify_standard(headers, body=BODY + b" ")
    expected = headers["webhook-signature"].split(",", 1)[1]
    assert expected not in str(info.value)
    assert WHSEC not in str(info.value)


def test_standard_forged_with_other_key() -> None:
    other = "whsec_" + base64.b64encode(b"another key entirely, 32 bytes!!").decode()
    message = _reject(STANDARD, _standard_headers(secret=other), secret=WHSEC)
    assert message == "webhook-signature does not match the body"


def test_standard_id_is_part_of_signed_content() -> None:
    headers = _standard_headers()
    headers["webhook-id"] = "msg_2"
    assert _reject(STANDARD, headers, secret=WHSEC) == "webhook-signature does not match the body"


def test_standard_replayed_stale_and_future() -> None:
    assert _reject(STANDARD, _standard_headers(ts=int(NOW) - 301), secret=WHSEC) == (
        "timestamp too old"
    )
    assert _reject(STANDARD, _standard_headers(ts=int(NOW) + 301), secret=WHSEC) == (
        "timestamp too new"
    )
    # The tolerance is inclusive and configurable.
    _verify_standard(_standard_headers(ts=int(NOW) - 300))
    _verify_standard(_standard_headers(ts=int(NOW) + 300))
    stale = _standard_headers(ts=int(NOW) - 30)
    assert _reject(STANDARD, stale, secret=WHSEC, tolerance_s=10) == "timestamp too old"


def test_standard_multiple_signatures_one_matching() -> None:
    headers = _standard_headers()
    good = headers["webhook-signature"]
    bogus = "v1," + base64.b64encode(b"x" * 32).decode()
    headers["webhook-signature"] = f"{bogus} v1a,c2lnbmF0dXJl {good}"
    _verify_standard(headers)
    headers["webhook-signature"] = f"{bogus} v1,{base64.b64encode(b'y' * 32).decode()}"
    assert _reject(STANDARD, headers, secret=WHSEC) == "webhook-signature does not match the body"


def test_standard_bad_base64_signature() -> None:
    headers = _standard_headers()
    headers["webhook-signature"] = "v1,not*base64!"
    message = _reject(STANDARD, headers, secret=WHSEC)
    assert message == "webhook-signature header has no well-formed v1 signature"
    headers["webhook-signature"] = "v2,abcd"
    message = _reject(STANDARD, headers, secret=WHSEC)
    assert message == "webhook-signature header has no well-formed v1 signature"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_standard_missing_header(missing: str) -> None:
    headers = _standard_headers()
    del headers[missing]
    assert _reject(STANDARD, headers, secret=WHSEC) == f"missing {missing} header"


def test_standard_timestamp_not_a_number() -> None:
    headers = _standard_headers()
    headers["webhook-timestamp"] = "yesterday"
    message = _reject(STANDARD, headers, secret=WHSEC)
    assert message == "webhook-timestamp header is not a unix timestamp"


@pytest.mark.parametrize("secret", [None, "", "whsec_***not base64***"])
def test_standard_unusable_secret_is_a_config_error(secret: str | None) -> None:
    with pytest.raises(ConfigError) as info:
        verify_webhook(STANDARD, secret=secret, headers=_standard_headers(), body=BODY, now=NOW)
    if secret:
        assert secret not in str(info.value)


# --- Quo / OpenPhone ---------------------------------------------------------------------------


def _openphone_signature(ts_ms: int, body: bytes = BODY, secret: str = OP_SECRET) -> str:
    # Computed here from the vendor's description, independently of sign_openphone.
    digest = hmac.new(base64.b64decode(secret), f"{ts_ms}.".encode() + body, hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


def _verify_openphone(value: str, body: bytes = BODY) -> None:
    headers = {"openphone-signature": value}
    verify_webhook(OPENPHONE, secret=OP_SECRET, headers=headers, body=body, now=NOW)


def test_openphone_valid_and_sign_helper_agree() -> None:
    ts_ms = int(NOW * 1000) - 1500
    value = f"hmac;1;{ts_ms};{_openphone_signature(ts_ms)}"
    assert sign_openphone(OP_SECRET, ts_ms, BODY) == value
    _verify_openphone(value)
    headers = {"OpenPhone-Signature": value}
    verify_webhook(OPENPHONE, secret=OP_SECRET, headers=headers, body=BODY, now=NOW)


def test_openphone_forged() -> None:
    ts_ms = int(NOW * 1000)
    other = base64.b64encode(b"not the signing key").decode()
    headers = {"openphone-signature": sign_openphone(other, ts_ms, BODY)}
    message = _reject(OPENPHONE, headers, secret=OP_SECRET)
    assert message == "openphone-signature does not match the body"
    assert _openphone_signature(ts_ms) not in message
    with pytest.raises(SignatureError, match="does not match"):
        _verify_openphone(sign_openphone(OP_SECRET, ts_ms, BODY), body=BODY.replace(b"}", b" }"))


def test_openphone_timestamp_is_signed() -> None:
    ts_ms = int(NOW * 1000)
    value = f"hmac;1;{ts_ms + 1};{_openphone_signature(ts_ms)}"
    assert _reject(OPENPHONE, {"openphone-signature": value}, secret=OP_SECRET) == (
        "openphone-signature does not match the body"
    )


def test_openphone_replayed_stale_and_future() -> None:
    old = {"openphone-signature": sign_openphone(OP_SECRET, int(NOW * 1000) - 300_001, BODY)}
    assert _reject(OPENPHONE, old, secret=OP_SECRET) == "timestamp too old"
    new = {"openphone-signature": sign_openphone(OP_SECRET, int(NOW * 1000) + 300_001, BODY)}
    assert _reject(OPENPHONE, new, secret=OP_SECRET) == "timestamp too new"
    _verify_openphone(sign_openphone(OP_SECRET, int(NOW * 1000) - 300_000, BODY))


def test_openphone_several_signatures() -> None:
    ts_ms = int(NOW * 1000)
    forged = f"hmac;1;{ts_ms};{base64.b64encode(b'z' * 32).decode()}"
    good = sign_openphone(OP_SECRET, ts_ms, BODY)
    _verify_openphone(f"{forged}, {good}")
    _verify_openphone(f"{good},{forged}")
    with pytest.raises(SignatureError, match=r"^openphone-signature does not match the body$"):
        _verify_openphone(f"{forged},{forged}")


@pytest.mark.parametrize(
    "value",
    [
        "hmac;1;1700000000000;***",  # bad base64
        "hmac;1;1700000000000",  # no signature
        "sha1;1;1700000000000;c2ln",  # other algorithm
        "hmac;2;1700000000000;c2ln",  # other version
        "hmac;1;soon;c2ln",  # timestamp not a number
        "hmac;1;\u00b2;c2ln",  # a digit, but not an ASCII one
        "garbage",
    ],
)
def test_openphone_malformed_header(value: str) -> None:
    message = _reject(OPENPHONE, {"openphone-signature": value}, secret=OP_SECRET)
    assert message == "openphone-signature header is malformed"


def test_openphone_missing_header() -> None:
    assert _reject(OPENPHONE, {}, secret=OP_SECRET) == "missing openphone-signature header"
    assert _reject(OPENPHONE, _standard_headers(), secret=OP_SECRET) == (
        "missing openphone-signature header"
    )


def test_openphone_secret_not_base64_is_a_config_error() -> None:
    headers = {"openphone-signature": sign_openphone(OP_SECRET, int(NOW * 1000), BODY)}
    with pytest.raises(ConfigError, match=r"^the openphone signing secret is not base64$"):
        verify_webhook(OPENPHONE, secret="%%%", headers=headers, body=BODY, now=NOW)


# --- token and none ----------------------------------------------------------------------------


def test_token_matches_case_insensitive_header() -> None:
    headers = {"X-Webhook-Token": "s3cret-token"}
    verify_webhook(
        VerifyScheme.TOKEN,
        secret="s3cret-token",
        headers=headers,
        body=b"",
        header="x-webhook-token",
    )


def test_token_mismatch_and_missing() -> None:
    kw = {"header": "X-Webhook-Token"}
    wrong = {"x-webhook-token": "s3cret-tokeN"}
    message = _reject(VerifyScheme.TOKEN, wrong, secret="s3cret-token", **kw)
    assert message == "x-webhook-token header does not match the token"
    message = _reject(VerifyScheme.TOKEN, {}, secret="s3cret-token", **kw)
    assert message == "missing x-webhook-token header"


def test_token_needs_header_name_and_secret() -> None:
    with pytest.raises(ConfigError, match="name of the header"):
        verify_webhook(VerifyScheme.TOKEN, secret="t", headers={"a": "t"}, body=b"")
    with pytest.raises(ConfigError, match=r"^token verification needs a secret, and none is set$"):
        verify_webhook(VerifyScheme.TOKEN, secret=None, headers={"a": "t"}, body=b"", header="a")


def test_none_accepts_anything() -> None:
    verify_webhook(VerifyScheme.NONE, secret=None, headers={}, body=b"\xff")


# --- event identity ----------------------------------------------------------------------------


def test_default_event_id() -> None:
    headers = {"Webhook-Id": "msg_42"}
    assert default_event_id(STANDARD, headers, {"id": "body-id"}) == "msg_42"
    assert default_event_id(STANDARD, {}, {"id": "body-id"}) is None
    assert default_event_id(OPENPHONE, headers, {"id": "EV1", "type": "call.completed"}) == "EV1"
    assert default_event_id(OPENPHONE, {}, {"id": 7}) is None
    assert default_event_id(OPENPHONE, {}, ["not", "a", "dict"]) is None
    assert default_event_id(VerifyScheme.TOKEN, headers, {"id": "x"}) is None
    assert default_event_id(VerifyScheme.NONE, headers, {"id": "x"}) is None


# --- issue 14: unpadded secrets, timestamps in the wrong unit -----------------------------------


def test_standard_secret_without_base64_padding_is_accepted() -> None:
    # 31 key bytes encode to base64 with one "=": people copy secrets without it, and the
    # official Standard Webhooks libraries accept them.
    key = b"k" * 31
    padded = "whsec_" + base64.b64encode(key).decode()
    assert padded.endswith("=")
    unpadded = padded.rstrip("=")
    headers = _standard_headers(secret=padded)
    verify_webhook(STANDARD, secret=unpadded, headers=headers, body=BODY, now=NOW)
    assert sign_standard(unpadded, "msg_1", int(NOW), BODY) == headers["webhook-signature"]


def test_openphone_timestamp_in_seconds_is_reported_as_such() -> None:
    ts = str(int(NOW))  # seconds, signed correctly: not "too old"
    digest = hmac.new(base64.b64decode(OP_SECRET), f"{ts}.".encode() + BODY, hashlib.sha256)
    header = f"hmac;1;{ts};" + base64.b64encode(digest.digest()).decode()
    message = _reject(OPENPHONE, {"openphone-signature": header}, secret=OP_SECRET)
    assert message == (
        f"openphone-signature timestamp {ts} is in seconds; Quo signs with milliseconds since "
        "1970 (13 digits)"
    )


def test_standard_timestamp_in_milliseconds_is_reported_as_such() -> None:
    ts = int(NOW) * 1000
    message = _reject(STANDARD, _standard_headers(ts=ts), secret=WHSEC)
    assert message == (
        f"webhook-timestamp {ts} is in milliseconds; Standard Webhooks sign with seconds since "
        "1970 (10 digits)"
    )


# --- hostile signature headers -----------------------------------------------------------------


def test_openphone_at_most_eight_entries_are_taken() -> None:
    ts_ms = int(NOW * 1000)
    forged = f"hmac;1;{ts_ms};{base64.b64encode(b'z' * 32).decode()}"
    good = sign_openphone(OP_SECRET, ts_ms, BODY)
    assert MAX_SIGNATURES == 8
    _verify_openphone(",".join([forged] * 7 + [good]))  # a rotation never needs more
    message = _reject(
        OPENPHONE, {"openphone-signature": ",".join([forged] * 8 + [good])}, secret=OP_SECRET
    )
    assert message == "openphone-signature lists more than 8 signatures"


def test_openphone_sixty_thousand_entries_over_a_megabyte_are_refused() -> None:
    # the attack of issue 9: a 1 MB body and a 1 MB header of 60,000 entries (41 s of HMACs)
    body = b'{"pad": "' + b"x" * (1 << 20) + b'"}'
    entry = f"hmac;1;{int(NOW * 1000)};{base64.b64encode(b'z' * 32).decode()}"
    value = ",".join([entry] * 60_000)
    assert len(value) > 1 << 20
    with pytest.raises(SignatureError, match=r"^openphone-signature lists more than 8 signatures$"):
        _verify_openphone(value, body=body)


def test_openphone_repeated_timestamps_still_verify() -> None:
    # entries sharing a timestamp share one HMAC over the body: a match is still found
    ts_ms = int(NOW * 1000)
    forged = f"hmac;1;{ts_ms};{base64.b64encode(b'z' * 32).decode()}"
    good = sign_openphone(OP_SECRET, ts_ms, BODY)
    _verify_openphone(f"{forged},{forged},{good},{forged}")
    older = sign_openphone(OP_SECRET, ts_ms - 1000, BODY)
    _verify_openphone(f"{forged},{older},{good}")


def test_standard_at_most_eight_signatures_are_taken() -> None:
    headers = _standard_headers()
    forged = "v1," + base64.b64encode(b"z" * 32).decode()
    headers["webhook-signature"] = " ".join([forged] * 7 + [headers["webhook-signature"]])
    _verify_standard(headers)
    good = headers["webhook-signature"].split()[-1]
    headers["webhook-signature"] = " ".join([forged] * 60_000 + [good])
    assert _reject(STANDARD, headers, secret=WHSEC) == (
        "webhook-signature lists more than 8 signatures"
    )
