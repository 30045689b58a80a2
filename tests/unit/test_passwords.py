"""Password hashing: the dummy hash that keeps an unknown e-mail as slow as a wrong password."""

from __future__ import annotations

from app.accounts import passwords


def test_the_stored_dummy_hash_has_the_hashers_parameters_and_is_used():
    # Same cost as a real user's hash (else an unknown e-mail would answer faster), and not recomputed.
    assert not passwords._hasher.check_needs_rehash(passwords._STORED_DUMMY_HASH)
    assert passwords._hasher.verify(passwords._STORED_DUMMY_HASH, "not-a-real-password")
    assert passwords._dummy_hash() == passwords._STORED_DUMMY_HASH


def test_an_unknown_user_never_verifies():
    assert passwords.verify_password(None, "not-a-real-password") is False
    assert passwords.verify_password(None, "anything") is False
    real = passwords.hash_password("s3cret-pass")
    assert passwords.verify_password(real, "s3cret-pass") is True
    assert passwords.verify_password(real, "wrong") is False


def test_a_stale_stored_hash_is_replaced_by_one_with_the_current_parameters(monkeypatch):
    stale = "$argon2id$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$8Ql3Hc2v6kXbNZ7yIWJ0rQ"
    monkeypatch.setattr(passwords, "_STORED_DUMMY_HASH", stale)
    monkeypatch.setattr(passwords, "_dummy", [])
    made = passwords._dummy_hash()
    assert made != stale and not passwords._hasher.check_needs_rehash(made)
    assert passwords._hasher.verify(made, "not-a-real-password")
