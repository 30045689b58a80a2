"""Encryption at rest (app/core/encryption.py): round trip, rotation without downtime, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config.settings import ConfigError, load_settings, validate
from app.core.encryption import DataCipher, DecryptionFailed, cipher_for, generate_key, mask


def test_round_trip_and_no_equality_leak() -> None:
    cipher = DataCipher([generate_key()])
    one, two = cipher.encrypt("1234567890"), cipher.encrypt("1234567890")
    assert one != two  # a fresh IV each time: the database cannot tell equal PINs apart
    assert "1234567890" not in one
    assert cipher.decrypt(one) == cipher.decrypt(two) == "1234567890"


def test_rotation_new_key_first_old_still_reads_then_dropped() -> None:
    old, new = generate_key(), generate_key()
    stored = DataCipher([old]).encrypt("WAEC-PIN-0001")
    during = DataCipher([new, old])  # step 1: new key first, old kept
    assert during.decrypt(stored) == "WAEC-PIN-0001"
    rotated = during.rotate(stored)  # step 2: `vtu keys rotate`
    after = DataCipher([new])  # step 3: old key dropped
    assert after.decrypt(rotated) == "WAEC-PIN-0001"
    with pytest.raises(DecryptionFailed):
        after.decrypt(stored)  # a value left unrotated is refused, not misread


def test_tampered_value_is_refused() -> None:
    cipher = DataCipher([generate_key()])
    token = cipher.encrypt("secret")
    tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(tampered)


def test_dev_key_derived_from_secret_key_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATA_ENCRYPTION_KEYS", raising=False)
    monkeypatch.setenv("APP_ENV", "dev")
    settings = load_settings(env_file=Path("/nonexistent"))
    assert settings.data_encryption_keys == ()
    cipher = cipher_for(settings)
    assert cipher.decrypt(cipher_for(settings).encrypt("x")) == "x"


def test_bad_keys_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    good = generate_key()
    monkeypatch.setenv("APP_ENV", "dev")
    monkeypatch.setenv("DATA_ENCRYPTION_KEYS", f"{good},not-a-key,{good}")
    settings = load_settings(env_file=Path("/nonexistent"))
    with pytest.raises(ConfigError) as caught:
        validate(settings)
    assert "DATA_ENCRYPTION_KEYS key 2 must be a Fernet key" in str(caught.value)
    assert "lists a key twice" in str(caught.value)


def test_mask_shows_only_the_end() -> None:
    assert mask("22212345678") == "*******5678"
    assert mask("123") == "***"
