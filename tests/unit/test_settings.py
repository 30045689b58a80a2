"""Settings: profiles, parsing, and production's single all-problems error."""

from __future__ import annotations

import pytest

from app.config.settings import ConfigError, load_settings, normalise_database_url, validate

PROD_OK = {
    "APP_ENV": "prod",
    "SECRET_KEY": "x" * 48,
    "ALLOWED_HOSTS": "topup.example.ng",
    "DATABASE_URL": "postgres://app@db:5432/vtu",
    "REDIS_URL": "redis://cache:6379/0",
    "VTU_PROVIDER": "vtpass",
    "VTPASS_API_KEY": "k",
    "VTPASS_PUBLIC_KEY": "PK_x",
    "VTPASS_SECRET_KEY": "SK_x",
    "VTPASS_CALLBACK_TOKEN": "t" * 24,
    "MONNIFY_API_KEY": "MK_PROD_X",
    "MONNIFY_SECRET_KEY": "secret",
    "MONNIFY_CONTRACT_CODE": "123",
    # what VTpass pays back per sale covers the default reseller discounts (airtime 200, data 100)
    "VTU_PROVIDER_COMMISSION_BPS": "airtime=300,data=300",
    "SMTP_URL": "smtps://mailer:p%40ss@smtp.example.ng:465",
    "MAIL_FROM": "TopUp NG <no-reply@topup.example.ng>",
    "SITE_URL": "https://topup.example.ng",
    "DATA_ENCRYPTION_KEYS": "dGVzdC1kYXRhLWVuY3J5cHRpb24ta2V5LTAxMjM0NTY=",
}
ALL_KEYS = {
    *PROD_OK,
    "DEBUG",
    "VTPASS_USERNAME",
    "VTPASS_PASSWORD",
    "VTU_REQUERY_SCHEDULE_SECONDS",
    "API_RATE_LIMIT_PER_MINUTE",
    "FUNDING_FEE_PERCENT",
    "MONNIFY_VERIFY_BEFORE_CREDIT",
    "DATABASE_POOL_SIZE",
    "DATABASE_MAX_OVERFLOW",
    "DATABASE_OWNER_URL",
    "DATABASE_PGBOUNCER",
    "TRUSTED_PROXIES",
    "CALLBACK_ALLOW_PRIVATE_ADDRESSES",
    "VTU_RESELLER_DISCOUNT_BPS",
    "VTU_PROVIDER_BY_SERVICE",
    "PASSWORD_HASH_PARAMS",
}


@pytest.fixture
def env(monkeypatch, tmp_path):
    for key in ALL_KEYS:
        monkeypatch.delenv(key, raising=False)

    def apply(**values: str):
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        return load_settings(env_file=tmp_path / "missing.env")

    return apply


def test_complete_production_settings_start(env):
    settings = env(**PROD_OK)
    validate(settings)
    assert settings.is_prod and settings.cookie_secure
    assert settings.monnify_verify_before_credit is True  # default on in prod
    assert settings.database_url == "postgresql+asyncpg://app@db:5432/vtu"


def test_prod_names_every_problem_in_one_error(env):
    settings = env(APP_ENV="prod", DEBUG="true", VTU_PROVIDER="vtpass", SECRET_KEY="short")
    with pytest.raises(ConfigError) as exc:
        validate(settings)
    message = str(exc.value)
    for expected in (
        "SECRET_KEY",
        "DEBUG",
        "ALLOWED_HOSTS",
        "DATABASE_URL",
        "REDIS_URL",
        "VTPASS_API_KEY",
        "VTPASS_CALLBACK_TOKEN",
        "MONNIFY_API_KEY",
        "MONNIFY_SECRET_KEY",
        "MONNIFY_CONTRACT_CODE",
    ):
        assert expected in message, expected
    assert message.count("\n  - ") >= 10


def test_stub_provider_is_refused_in_prod(env):
    settings = env(**{**PROD_OK, "VTU_PROVIDER": "stub"})
    with pytest.raises(ConfigError, match="VTU_PROVIDER=stub"):
        validate(settings)


def test_malformed_numbers_are_reported_even_in_dev(env):
    settings = env(
        VTU_REQUERY_SCHEDULE_SECONDS="30,soon", API_RATE_LIMIT_PER_MINUTE="lots", FUNDING_FEE_PERCENT="150"
    )
    with pytest.raises(ConfigError) as exc:
        validate(settings)
    assert "VTU_REQUERY_SCHEDULE_SECONDS" in str(exc.value)
    assert "API_RATE_LIMIT_PER_MINUTE" in str(exc.value)
    assert "FUNDING_FEE_PERCENT" in str(exc.value)


def test_dev_defaults(env):
    settings = env()
    validate(settings)
    assert settings.app_env == "dev"
    assert settings.vtu_provider == "stub"
    assert settings.requery_schedule_seconds == (30, 60, 120, 300, 600, 1800, 3600)
    assert settings.api_rate_limit_per_minute == 60
    assert settings.monnify_verify_before_credit is False


def test_database_pool_is_sized_from_the_environment(env):
    assert (env().database_pool_size, env().database_max_overflow) == (20, 0)
    sized = env(DATABASE_POOL_SIZE="4", DATABASE_MAX_OVERFLOW="0")
    assert (sized.database_pool_size, sized.database_max_overflow) == (4, 0)
    bad = env(DATABASE_POOL_SIZE="many", DATABASE_MAX_OVERFLOW="-1")
    with pytest.raises(ConfigError) as exc:
        validate(bad)
    assert "DATABASE_POOL_SIZE" in str(exc.value) and "DATABASE_MAX_OVERFLOW" in str(exc.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgres://u@h:5432/d", "postgresql+asyncpg://u@h:5432/d"),
        ("postgresql://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg://u@h/d"),
    ],
)
def test_database_urls_are_plain_libpq(raw, expected):
    assert normalise_database_url(raw) == expected


def test_prod_refuses_money_losing_settings_in_one_error(env):
    """Crediting unverified webhooks, a stub route and reseller discounts above the provider's commission
    (every default-priced reseller sale below cost) each stop a production start, all named together."""
    settings = env(
        **{
            **PROD_OK,
            "MONNIFY_VERIFY_BEFORE_CREDIT": "false",
            "VTU_PROVIDER_BY_SERVICE": "dstv=stub, mtn=vtpass",
            "VTU_PROVIDER_COMMISSION_BPS": "airtime=150",
        }
    )
    with pytest.raises(ConfigError) as exc:
        validate(settings)
    message = str(exc.value)
    assert "MONNIFY_VERIFY_BEFORE_CREDIT must be on" in message
    assert "VTU_PROVIDER_BY_SERVICE routes dstv to the stub provider" in message
    assert "VTU_RESELLER_DISCOUNT_BPS airtime=200 is above VTU_PROVIDER_COMMISSION_BPS airtime=150" in message
    assert "VTU_RESELLER_DISCOUNT_BPS data=100 is above VTU_PROVIDER_COMMISSION_BPS data=0" in message
    assert message.count("\n  - ") == 4


def test_prod_with_the_default_discounts_and_no_commission_is_refused(env):
    without = {k: v for k, v in PROD_OK.items() if k != "VTU_PROVIDER_COMMISSION_BPS"}
    with pytest.raises(ConfigError, match="resellers would buy below cost"):
        validate(env(**without))
    # No discount at all is fine without a commission; an equal discount and commission is at cost.
    validate(env(**without, VTU_RESELLER_DISCOUNT_BPS="airtime=0,data=0"))
    validate(env(**{**PROD_OK, "VTU_RESELLER_DISCOUNT_BPS": "airtime=300,data=300"}))


def test_the_same_settings_are_accepted_outside_prod(env):
    dev = env(MONNIFY_VERIFY_BEFORE_CREDIT="false", VTU_PROVIDER_BY_SERVICE="dstv=stub")
    validate(dev)
    assert dev.callbacks_reach_private and dev.trusted_proxies == ()


def test_malformed_vtu_settings_are_named_at_start_up(env):
    with pytest.raises(ConfigError, match="VTU_PROVIDER_BY_SERVICE must look like"):
        validate(env(VTU_PROVIDER_BY_SERVICE="dstv"))


def test_a_password_hash_cost_below_owasps_minimum_refuses_start_up(env):
    with pytest.raises(ConfigError, match="PASSWORD_HASH_PARAMS='m=4096,t=1,p=1' is weaker than OWASP"):
        validate(env(**{**PROD_OK, "PASSWORD_HASH_PARAMS": "m=4096,t=1,p=1"}))
    with pytest.raises(ConfigError, match="PASSWORD_HASH_PARAMS must look like"):
        validate(env(PASSWORD_HASH_PARAMS="cheap"))  # in dev too
    validate(env(**{**PROD_OK, "PASSWORD_HASH_PARAMS": "m=19456,t=2,p=1"}))


def test_allowed_hosts_and_trusted_proxies_are_parsed(env):
    settings = env(
        **{
            **PROD_OK,
            "ALLOWED_HOSTS": "Topup.example.ng, .example.com., [::1], 127.0.0.1",
            "TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1 ::1,172.16.5.9/12",
        }
    )
    validate(settings)
    assert settings.allowed_hosts == ("topup.example.ng", ".example.com", "::1", "127.0.0.1")
    assert settings.trusted_proxies == ("10.0.0.0/8", "127.0.0.1/32", "::1/128", "172.16.0.0/12")
    assert not settings.callbacks_reach_private  # prod


def test_bad_allowed_hosts_and_trusted_proxies_are_named(env):
    settings = env(ALLOWED_HOSTS="example.com:8000, https://x.ng", TRUSTED_PROXIES="10.0.0.0/33, proxy")
    with pytest.raises(ConfigError) as exc:
        validate(settings)
    message = str(exc.value)
    assert "ALLOWED_HOSTS: 'example.com:8000': list host names only, without a scheme or port" in message
    assert "'https://x.ng'" in message
    assert "TRUSTED_PROXIES: '10.0.0.0/33' is not an IP address or CIDR" in message
    assert "TRUSTED_PROXIES: 'proxy' is not" in message


def test_prod_refuses_trusting_every_address_and_private_callbacks(env):
    settings = env(**PROD_OK, TRUSTED_PROXIES="0.0.0.0/0", CALLBACK_ALLOW_PRIVATE_ADDRESSES="true")
    with pytest.raises(ConfigError) as exc:
        validate(settings)
    assert "TRUSTED_PROXIES must list the proxies' own networks" in str(exc.value)
    assert "CALLBACK_ALLOW_PRIVATE_ADDRESSES must be off in production" in str(exc.value)
    assert not settings.callbacks_reach_private  # even with the flag, prod never reaches private addresses
    staging = env(APP_ENV="test", CALLBACK_ALLOW_PRIVATE_ADDRESSES="false")
    assert not staging.callbacks_reach_private


def test_the_owner_url_is_optional_and_must_be_another_role_of_the_same_database(env):
    assert env(**PROD_OK).database_owner_url == ""
    split = env(**PROD_OK, DATABASE_OWNER_URL="postgresql://owner:s3cret@db:5432/vtu")
    validate(split)
    assert split.database_owner_url == "postgresql+asyncpg://owner:s3cret@db:5432/vtu"
    assert split.database_url == "postgresql+asyncpg://app@db:5432/vtu"  # still the application's
    same_role = env(**PROD_OK, DATABASE_OWNER_URL="postgresql://app:other@db:5432/vtu")
    with pytest.raises(ConfigError) as exc:
        validate(same_role)
    assert "name the same role" in str(exc.value) and "SECRET_KEY" not in str(exc.value)
    # Malformed anywhere, not only in prod: migrations would run against another database.
    for owner_url, expected in (
        ("postgresql://owner@other-db:5432/vtu", "same server and database"),
        ("postgresql://owner@db:5432/vtu_other", "same server and database"),
        ("postgresql://db:5432/vtu", "must name its role"),
        ("mysql://owner@db/vtu", "postgresql://"),
    ):
        with pytest.raises(ConfigError, match=expected):
            validate(
                env(APP_ENV="dev", DATABASE_URL="postgres://app@db:5432/vtu", DATABASE_OWNER_URL=owner_url)
            )


def test_database_pgbouncer_is_off_by_default_and_lets_the_owner_url_go_straight_to_postgresql(env):
    assert env(**PROD_OK).database_pgbouncer is False
    # Through PgBouncer the app's URL names the pooler (another host, port and maybe database alias), while
    # migrations go straight to PostgreSQL: only then may the two addresses differ.
    urls = {
        "DATABASE_URL": "postgres://app@pgbouncer:6432/vtu",
        "DATABASE_OWNER_URL": "postgres://owner@db:5432/vtu",
    }
    pooled = env(**(PROD_OK | urls), DATABASE_PGBOUNCER="true")
    validate(pooled)
    assert pooled.database_pgbouncer is True
    with pytest.raises(ConfigError, match="same server and database"):
        validate(env(**(PROD_OK | urls), DATABASE_PGBOUNCER="false"))
    with pytest.raises(ConfigError, match="name the same role"):  # the other checks still apply
        same_role = urls | {"DATABASE_OWNER_URL": "postgres://app@db/vtu"}
        validate(env(**(PROD_OK | same_role), DATABASE_PGBOUNCER="1"))


def test_prod_routes_to_clubkonnect_need_its_credentials() -> None:
    from app.vtu.config import config_problems

    routes = {"VTU_PROVIDER_BY_SERVICE": "mtn=clubkonnect,glo=vtpass"}
    [problem] = [p for p in config_problems(routes, is_prod=True) if "ClubKonnect" in p]
    assert problem == (
        "VTU_PROVIDER_BY_SERVICE routes mtn to ClubKonnect: set CLUBKONNECT_USER_ID and CLUBKONNECT_API_KEY"
    )
    complete = routes | {"CLUBKONNECT_USER_ID": "CK1", "CLUBKONNECT_API_KEY": "k"}
    assert not [p for p in config_problems(complete, is_prod=True) if "ClubKonnect" in p]
    assert config_problems(routes, is_prod=False) == []
