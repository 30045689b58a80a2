"""Password hashing: the configurable cost (never below OWASP's minimum) and the dummy hash that keeps an
unknown e-mail as slow as a wrong password."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, extract_parameters

from app.accounts import passwords


@pytest.fixture
def params(monkeypatch: pytest.MonkeyPatch):
    """Set PASSWORD_HASH_PARAMS for one test, with a fresh hasher and dummy hash (restored after)."""

    def use(raw: str | None) -> None:
        if raw is None:
            monkeypatch.delenv(passwords.ENV, raising=False)
        else:
            monkeypatch.setenv(passwords.ENV, raw)
        monkeypatch.setattr(passwords, "_hashers", [])
        monkeypatch.setattr(passwords, "_dummy", [])

    return use


def test_the_default_cost_is_argon2_cffis_and_the_stored_dummy_hash_has_it(params):
    params(None)
    hasher = passwords._hasher()
    assert (hasher.memory_cost, hasher.time_cost, hasher.parallelism) == (65536, 3, 4)
    library = PasswordHasher()
    assert (hasher.memory_cost, hasher.time_cost) == (library.memory_cost, library.time_cost)
    # Same cost as a real user's hash (else an unknown e-mail would answer faster), and not recomputed.
    assert not hasher.check_needs_rehash(passwords._STORED_DUMMY_HASH)
    assert hasher.verify(passwords._STORED_DUMMY_HASH, "not-a-real-password")
    assert passwords._dummy_hash() == passwords._STORED_DUMMY_HASH


def test_a_configured_cost_is_used_and_the_dummy_hash_follows_it(params):
    params("m=19456,t=2,p=1")
    made = passwords.hash_password("s3cret-pass")
    got = extract_parameters(made)
    assert (got.memory_cost, got.time_cost, got.parallelism) == (19456, 2, 1)
    dummy = passwords._dummy_hash()
    assert dummy != passwords._STORED_DUMMY_HASH and not passwords._hasher().check_needs_rehash(dummy)
    assert extract_parameters(dummy).memory_cost == 19456  # an unknown e-mail costs what a real one does
    assert passwords.config_problems() == []


def test_a_hash_made_under_other_parameters_still_verifies(params):
    params(None)
    old = passwords.hash_password("s3cret-pass")
    params("m=47104,t=1,p=1")  # the cost changed: nobody is locked out
    assert passwords.verify_password(old, "s3cret-pass") is True
    assert passwords.verify_password(old, "wrong") is False
    assert passwords.needs_rehash(old) is True


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("m=8192,t=1,p=1", "weaker than OWASP's minimum"),
        ("m=19456,t=1,p=1", "weaker than OWASP's minimum"),
        ("m=7168,t=4,p=1", "weaker than OWASP's minimum"),
        ("m=19456,t=2", "must give m, t and p"),
        ("m=19456,t=2,p=1,m=1", "must look like"),
        ("m=19456,t=2,x=1", "must look like"),
        ("m=19456,t=two,p=1", "must look like"),
        ("m=19456,t=²,p=1", "must look like"),
        ("m=-19456,t=2,p=1", "must look like"),
        ("m=19456,t=2,p=0", "p is 1 to 16"),
        ("m=19456,t=2,p=64", "p is 1 to 16"),
        ("m=9999999,t=2,p=1", "at most 4194304 KiB"),
        ("fast", "must look like"),
    ],
)
def test_a_bad_cost_is_refused_with_a_clear_message(params, raw, message):
    params(raw)
    [problem] = passwords.config_problems()
    assert "PASSWORD_HASH_PARAMS" in problem and message in problem, problem
    with pytest.raises(ValueError, match="PASSWORD_HASH_PARAMS"):
        passwords.hash_password("s3cret-pass")


def test_owasps_equal_strength_pairs_are_all_accepted(params):
    for m, t in passwords.OWASP_MINIMUMS:
        params(f"m={m},t={t},p=1")
        assert passwords.config_problems() == []
        assert passwords.verify_password(passwords.hash_password("pw-123456"), "pw-123456")


def test_an_unknown_user_never_verifies(params):
    params(None)
    assert passwords.verify_password(None, "not-a-real-password") is False
    assert passwords.verify_password(None, "anything") is False
    real = passwords.hash_password("s3cret-pass")
    assert passwords.verify_password(real, "s3cret-pass") is True
    assert passwords.verify_password(real, "wrong") is False


def test_a_stale_stored_hash_is_replaced_by_one_with_the_current_parameters(params, monkeypatch):
    params(None)
    stale = "$argon2id$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$8Ql3Hc2v6kXbNZ7yIWJ0rQ"
    monkeypatch.setattr(passwords, "_STORED_DUMMY_HASH", stale)
    made = passwords._dummy_hash()
    assert made != stale and not passwords._hasher().check_needs_rehash(made)
    assert passwords._hasher().verify(made, "not-a-real-password")
