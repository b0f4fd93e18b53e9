"""The VAPID key and subject as configured, the push request's headers, and payload bounds (no I/O)."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from feeds_server import limits
from feeds_server.config import Settings
from feeds_server.notify import push, vapid
from tests.notify.push_service import PushService, browser_subscription, unb64


def _public(key: ec.EllipticCurvePrivateKey) -> str:
    return vapid.b64url(key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))


def test_without_a_key_it_is_derived_from_the_secret_the_same_on_every_node():
    a = vapid.public_key(Settings(secret_key="s3cret"))
    assert a == vapid.public_key(Settings(secret_key="s3cret"))
    assert a != vapid.public_key(Settings(secret_key="other"))
    assert len(unb64(a)) == 65


def test_a_key_given_as_pem_raw_or_der_is_used():
    key = ec.generate_private_key(ec.SECP256R1())
    pem = subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout"], capture_output=True, text=True).stdout
    forms = {
        "pkcs8": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode(),
        "raw": vapid.b64url(key.private_numbers().private_value.to_bytes(32, "big")),
        "der": vapid.b64url(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
    }
    for name, text in forms.items():
        assert vapid.public_key(Settings(vapid_private_key=text)) == _public(key), name
    escaped = forms["pkcs8"].replace("\n", "\\n")
    assert vapid.public_key(Settings(vapid_private_key=escaped)) == _public(key)
    if pem:  # openssl's own "EC PRIVATE KEY" form, as docs/configuration.md makes it
        assert len(unb64(vapid.public_key(Settings(vapid_private_key=pem.strip())))) == 65


@pytest.mark.parametrize("text", ["not a key!", vapid.b64url(b"short"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"])
def test_a_key_that_is_not_p256_stops_the_worker(text):
    with pytest.raises(ValueError):
        vapid.private_key(Settings(vapid_private_key=text))


def test_the_subject_is_configured_or_taken_from_the_sender_address():
    assert vapid.subject(Settings(vapid_subject="mailto:ops@example.com")) == "mailto:ops@example.com"
    assert vapid.subject(Settings(mail_from="Feeds <feeds@example.com>")) == "mailto:feeds@example.com"
    assert vapid.subject(Settings(mail_from="nobody", public_url="https://feeds.example.com")) == "https://feeds.example.com"
    with pytest.raises(ValueError):
        vapid.subject(Settings(vapid_subject="http://example.com"))


@pytest.mark.parametrize("value", [
    "http://feeds.example.com", "mailto:feeds@localhost", "https://localhost:8000", "mailto:me@box.local",
    "https://feeds.invalid", "mailto:ops@127.0.0.1", "https://[::1]/", "mailto:@example.com", "mailto:a b@example.com",
])
def test_a_subject_a_push_service_refuses_is_never_used(value):
    assert vapid.subject_refusal(value) is not None
    with pytest.raises(ValueError, match="FEEDS_VAPID_SUBJECT"):
        vapid.subject(Settings(vapid_subject=value))


def test_the_defaults_derive_no_subject_at_localhost():
    # The laptop defaults (feeds@localhost, http://localhost:8000) make no subject Apple would refuse.
    with pytest.raises(ValueError, match="FEEDS_VAPID_SUBJECT"):
        vapid.subject(Settings())
    assert vapid.subject(Settings(public_url="https://feeds.example.com")) == "https://feeds.example.com"
    assert vapid.subject(Settings(mail_from="x@feeds.example.com", public_url="https://feeds.example.com")) == "mailto:x@feeds.example.com"


@pytest.mark.parametrize(("endpoint", "origin"), [
    ("https://push.example.com/a", "https://push.example.com"),
    ("https://Push.Example.COM:443/a", "https://push.example.com"),
    ("HTTPS://push.example.com:8443/a", "https://push.example.com:8443"),
    ("http://127.0.0.1:80/x", "http://127.0.0.1"),
    ("https://[::1]:9/x", "https://[::1]:9"),
])
def test_the_vapid_audience_is_the_normalised_origin(endpoint, origin):
    from feeds_server.domain import push_targets

    assert push_targets.origin(endpoint) == origin
    signer = vapid.Signer(vapid.private_key(Settings(secret_key="k")), "mailto:a@example.com")
    token = signer.authorization(endpoint).split("t=")[1].split(",")[0]
    assert json.loads(unb64(token.split(".")[1]))["aud"] == origin


def test_retry_after_takes_ascii_seconds_only():
    assert push._retry_after("120") == 120.0
    assert push._retry_after("\u00b2") is None  # "²".isdigit() is True, float("²") raises
    assert push._retry_after("٣") is None
    assert push._retry_after("Wed, 21 Oct 2026 07:28:00 GMT") is None
    result = push._sorted(429, "", "\u00b2")
    assert result.outcome == push.RETRY and result.retry_after is None


def test_a_push_service_answer_is_kept_printable():
    result = push._sorted(400, "bad\x1b[31m red\r\nnext\u202eline\x00", None)
    assert result.outcome == push.REFUSED
    assert all(c.isprintable() for c in result.detail) and "\x1b" not in result.detail
    assert result.detail.startswith("400 bad [31m red next line")


def test_a_token_is_reused_per_origin_until_half_its_life_is_left():
    start = float(int(time.time()))
    now = [start]
    signer = vapid.Signer(vapid.private_key(Settings(secret_key="k")), "mailto:a@example.com", clock=lambda: now[0])
    first = signer.authorization("https://push.example.com/a")
    assert signer.authorization("https://push.example.com/b") == first
    assert signer.authorization("https://other.example.com/a") != first
    # The token is what a push service checks.
    PushService._check_vapid(first, "https://push.example.com", None)
    claims = json.loads(unb64(first.split("t=")[1].split(",")[0].split(".")[1]))
    assert claims["sub"] == "mailto:a@example.com" and claims["exp"] - start == limits.VAPID_TOKEN_SECONDS
    now[0] += limits.VAPID_TOKEN_SECONDS / 2 + 1
    assert signer.authorization("https://push.example.com/a") != first


def test_request_headers_urgency_ttl_and_topic():
    sender = push.PushSender(Settings(secret_key="k", vapid_subject="mailto:ops@example.com"), client=object())  # type: ignore[arg-type]
    sub = browser_subscription()
    target = push.Target(sub["endpoint"], sub["keys"]["p256dh"], sub["keys"]["auth"])
    headers, body = sender.request(target, {"kind": "mention", "tag": "mention:12", "body": "x"})
    assert headers["Urgency"] == "high" and headers["TTL"] == str(limits.PUSH_TTL_SECONDS)
    assert headers["Content-Encoding"] == "aes128gcm" and len(body) > 86  # salt, record size, key id, ciphertext
    assert len(headers["Topic"]) == 32 and base64.urlsafe_b64decode(headers["Topic"] + "==")
    headers, _ = sender.request(target, {"kind": "record_followed", "tag": "rec-7"})
    assert headers["Urgency"] == "normal" and headers["Topic"] == "rec-7"
    headers, _ = sender.request(target, {"kind": "reaction"})
    assert "Topic" not in headers


def test_a_long_body_is_cut_to_the_payload_limit():
    data = push.encode_payload({"title": "t", "body": "é" * 5000, "kind": "mention", "notification_id": 1, "url": "/"})
    assert len(data) <= limits.PUSH_MAX_PAYLOAD_BYTES
    assert json.loads(data)["body"].endswith("…")
    small = {"title": "t", "body": "b"}
    assert json.loads(push.encode_payload(small)) == small


def test_settings_from_env_read_the_vapid_variables(monkeypatch):
    monkeypatch.setenv("FEEDS_VAPID_PRIVATE_KEY", "abc")
    monkeypatch.setenv("FEEDS_VAPID_SUBJECT", "mailto:x@example.com")
    monkeypatch.setenv("FEEDS_SECRET_KEY", "k")
    s = Settings.from_env()
    assert (s.vapid_private_key, s.vapid_subject) == ("abc", "mailto:x@example.com")
    assert s.describe()["vapid_private_key"] == "***"
    assert replace(s, vapid_private_key="").describe()["vapid_private_key"] == ""
