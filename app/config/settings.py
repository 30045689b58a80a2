"""Typed settings read once from the environment (and an optional `.env`).

Three profiles (APP_ENV): `dev` (default), `test` and `prod`. Production refuses to start with unsafe or
missing values and names every one of them in a single error, so an operator fixes them in one pass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from dotenv import load_dotenv

from app.accounts.kyc_config import DEFAULT_KYC_LIMITS, LevelLimits, parse_kyc_limits

BASE_DIR = Path(__file__).resolve().parents[2]
DEV_SECRET_KEY = "dev-insecure-secret-key-change-me-0123456789"
DEFAULT_REQUERY_SCHEDULE = (30, 60, 120, 300, 600, 1800, 3600)


class ConfigError(RuntimeError):
    """Raised at start-up when the configuration cannot run safely."""


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int, problems: list[str]) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        problems.append(f"{name} must be a whole number (got {raw!r})")
        return default
    if value < 0:
        problems.append(f"{name} must not be negative (got {value})")
        return default
    return value


def _decimal_percent(name: str, default: str, problems: list[str]) -> str:
    from decimal import Decimal, InvalidOperation

    raw = os.environ.get(name, default).strip() or default
    try:
        value = Decimal(raw)
    except InvalidOperation:
        problems.append(f"{name} must be a number like 1.5 (got {raw!r})")
        return default
    if not (Decimal(0) <= value <= Decimal(100)):
        problems.append(f"{name} must be between 0 and 100 (got {raw})")
        return default
    return raw


def _rate(name: str, raw: str | None, problems: list[str]) -> float:
    """A sampling rate between 0 and 1 (empty: 0)."""
    if raw is None or raw.strip() == "":
        return 0.0
    try:
        value = float(raw.strip())
    except ValueError:
        problems.append(f"{name} must be a number between 0 and 1 (got {raw!r})")
        return 0.0
    if not 0.0 <= value <= 1.0:
        problems.append(f"{name} must be between 0 and 1 (got {raw})")
        return 0.0
    return value


def _schedule(raw: str | None, problems: list[str]) -> tuple[int, ...]:
    if raw is None or raw.strip() == "":
        return DEFAULT_REQUERY_SCHEDULE
    try:
        steps = tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        problems.append(f"VTU_REQUERY_SCHEDULE_SECONDS must be comma-separated seconds (got {raw!r})")
        return DEFAULT_REQUERY_SCHEDULE
    if not steps or any(step <= 0 for step in steps):
        problems.append("VTU_REQUERY_SCHEDULE_SECONDS needs at least one positive number of seconds")
        return DEFAULT_REQUERY_SCHEDULE
    return steps


def _hosts(raw: str | None, problems: list[str]) -> tuple[str, ...]:
    """ALLOWED_HOSTS: host names without a port ('example.com', '.example.com', '*', '[::1]' or '::1')."""
    from app.core.hosts import normalise_pattern

    hosts: list[str] = []
    for entry in (raw or "").split(","):
        if not entry.strip():
            continue
        try:
            hosts.append(normalise_pattern(entry))
        except ValueError as exc:
            problems.append(f"ALLOWED_HOSTS: {exc}")
    return tuple(hosts)


def _networks(name: str, raw: str | None, problems: list[str]) -> tuple[str, ...]:
    """Comma-separated addresses or CIDRs -> normalised networks ('10.0.0.1' -> '10.0.0.1/32')."""
    import ipaddress

    networks: list[str] = []
    for entry in (raw or "").replace(" ", ",").split(","):
        if not entry.strip():
            continue
        try:
            network = str(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            problems.append(f"{name}: {entry.strip()[:60]!r} is not an IP address or CIDR like 10.0.0.0/8")
            continue
        if network not in networks:
            networks.append(network)
    return tuple(networks)


USER_TIERS = ("customer", "reseller")  # the users.tier CHECK (app/accounts/models.py)


def _encryption_keys(raw: str | None, problems: list[str]) -> tuple[str, ...]:
    from app.core.encryption import key_problem

    keys = tuple(k.strip() for k in (raw or "").split(",") if k.strip())
    for number, key in enumerate(keys, start=1):
        problem = key_problem(key)
        if problem:
            problems.append(f"DATA_ENCRYPTION_KEYS key {number} {problem}")
    if len(set(keys)) != len(keys):
        problems.append("DATA_ENCRYPTION_KEYS lists a key twice")
    return keys


def _tiers(raw: str | None, problems: list[str]) -> tuple[str, ...]:
    if raw is None or not raw.strip():
        return ("reseller",)
    tiers = tuple(dict.fromkeys(t.strip().lower() for t in raw.split(",") if t.strip()))
    unknown = [t for t in tiers if t not in USER_TIERS]
    if unknown or not tiers:
        problems.append(f"API_KEY_TIERS must list tiers from {', '.join(USER_TIERS)} (got {raw!r})")
        return ("reseller",)
    return tiers


def normalise_database_url(url: str) -> str:
    """Accept a plain libpq URL (postgres://, postgresql://, +asyncpg) and return the asyncpg form."""
    for prefix in ("postgresql+asyncpg://", "postgres+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def database_user(url: str) -> str | None:
    """The role a database URL logs in as (None when the URL leaves it to libpq's default)."""
    from sqlalchemy.engine import make_url

    return make_url(normalise_database_url(url)).username or None


def _database_address(url: str) -> tuple[object, ...]:
    from sqlalchemy.engine import make_url

    parsed = make_url(normalise_database_url(url))
    return (parsed.host, parsed.port, parsed.database, parsed.query.get("host"), parsed.query.get("port"))


def same_role(url: str, other: str) -> bool:
    return database_user(url) == database_user(other)


def owner_url_problems(database_url: str, owner_url: str, *, pooled: bool = False) -> list[str]:
    """DATABASE_OWNER_URL must be a PostgreSQL URL of the same database as DATABASE_URL, naming its role.
    `pooled`: DATABASE_URL goes through PgBouncer and the owner straight to PostgreSQL, so their addresses
    (port, the pooler's database alias) differ by design and are not compared."""
    from sqlalchemy.exc import ArgumentError

    if not database_url:
        return [
            "DATABASE_OWNER_URL is set but DATABASE_URL is not (set both, or neither for the embedded one)"
        ]
    try:
        if not normalise_database_url(owner_url).startswith("postgresql+asyncpg://"):
            return ["DATABASE_OWNER_URL must be a postgresql:// URL"]
        if not database_user(owner_url):
            return ["DATABASE_OWNER_URL must name its role (postgresql://owner:password@host:5432/db)"]
        if not database_user(database_url):
            return [
                "DATABASE_URL must name its role when DATABASE_OWNER_URL is set (it is granted privileges)"
            ]
        if not pooled and _database_address(database_url) != _database_address(owner_url):
            return ["DATABASE_OWNER_URL and DATABASE_URL must point at the same server and database"]
    except (ArgumentError, ValueError):
        return ["DATABASE_OWNER_URL or DATABASE_URL is not a valid database URL"]
    return []


@dataclass(frozen=True, slots=True)
class Settings:
    app_env: str = "dev"
    debug: bool = False
    secret_key: str = DEV_SECRET_KEY
    database_url: str = ""
    # The role that owns the tables and functions and runs `vtu database upgrade` (README "Database roles").
    # Empty: migrations run as DATABASE_URL's role, and nothing separates the application from the owner.
    database_owner_url: str = ""
    # connections per process. A fixed pool by default: "overflow" connections are closed again as soon as
    # they are returned, so a burst above the pool size churns connections (each new one costs a handshake,
    # type setup and re-prepared statements: measured 30% fewer purchases/s). Requests wait for a free
    # connection instead (no code path holds one connection while asking for another; the tests run with
    # a 4-connection fixed pool to keep it so). PostgreSQL's max_connections must cover every web process,
    # worker and CLI command together.
    database_pool_size: int = 20
    database_max_overflow: int = 0
    # DATABASE_URL points at PgBouncer in transaction pooling (README "Scaling"): no cached or reused
    # prepared statement names, and every statement inside BEGIN / COMMIT (app/core/db.py).
    database_pgbouncer: bool = False
    redis_url: str = ""
    # Host names the site answers to, whatever the port (app/core/hosts.py; README "Production notes").
    allowed_hosts: tuple[str, ...] = ("*",)
    # Networks of the reverse proxies whose X-Forwarded-For / -Proto are believed (app/core/proxies.py).
    trusted_proxies: tuple[str, ...] = ()
    # Reseller callbacks may go to loopback/private addresses (dev and test receivers on 127.0.0.1).
    # Never in prod: a customer's URL must not make our worker call our own network.
    callback_allow_private: bool = True
    log_level: str = "INFO"
    log_dir: str = ""
    sentry_dsn: str = ""
    # share of requests / jobs traced by Sentry (SENTRY_TRACES_SAMPLE_RATE, 0-1; 0 = errors only)
    sentry_traces_sample_rate: float = 0.0
    # GET /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; unset = always 404 (core/metrics.py)
    metrics_token: str = ""
    # Fernet keys for values kept encrypted at rest (exam PINs, BVN/NIN): the first encrypts, all decrypt
    # (app/core/encryption.py). Empty outside prod: one key derived from SECRET_KEY. Required in prod.
    data_encryption_keys: tuple[str, ...] = ()
    # providers
    vtu_provider: str = "stub"
    vtpass_base_url: str = "https://sandbox.vtpass.com"
    vtpass_api_key: str = ""
    vtpass_public_key: str = ""
    vtpass_secret_key: str = ""
    vtpass_username: str = ""
    vtpass_password: str = ""
    vtpass_callback_token: str = ""
    # the second provider (app/vtu/providers/clubkonnect.py): every call is a GET with UserID + APIKey
    clubkonnect_base_url: str = "https://www.nellobytesystems.com"
    clubkonnect_user_id: str = ""
    clubkonnect_api_key: str = ""
    clubkonnect_callback_token: str = ""
    monnify_base_url: str = "https://sandbox.monnify.com"
    monnify_api_key: str = ""
    monnify_secret_key: str = ""
    monnify_contract_code: str = ""
    monnify_verify_before_credit: bool = False
    monnify_allowed_ips: tuple[str, ...] = ()
    requery_schedule_seconds: tuple[int, ...] = DEFAULT_REQUERY_SCHEDULE
    # money rules
    funding_fee_flat_kobo: int = 0
    funding_fee_percent: str = "0"
    funding_fee_cap_kobo: int = 0
    api_rate_limit_per_minute: int = 60
    api_daily_spend_limit_kobo: int = 0
    # KYC tier limits (app/accounts/kyc_config.py, KYC_LIMITS): per level 0/1/2, the most one purchase and
    # one Lagos day of purchases may cost; () = none (the default under APP_ENV=test only)
    kyc_limits: tuple[LevelLimits, ...] = ()
    # HMAC key of the BVN / NIN fingerprints that keep one BVN/NIN on one account (KYC_FINGERPRINT_KEY;
    # "" = derived from SECRET_KEY). Set it once and keep it: stored fingerprints are only comparable under
    # the key that made them (docs/architecture.md "KYC")
    kyc_fingerprint_key: str = ""
    # a manual wallet adjustment above this waits for a second finance user's approval (0: every one does)
    adjustment_approval_kobo: int = 500_000
    # alerts (app/alerts): provider float below this raises an alert (ALERT_FLOAT_KOBO, 0 = off); a
    # service's success rate over the last 15 min below ALERT_SUCCESS_RATE_PERCENT (0 = off)
    alert_float_kobo: int = 2_000_000
    alert_success_rate_percent: int = 80
    # provider health (app/vtu/provider_health.py): a provider's circuit breaker opens after this many
    # consecutive errors / timeouts (VTU_BREAKER_ERRORS), stays open this long (VTU_BREAKER_COOLDOWN_SECONDS),
    # then lets one probe through, whose claim lasts VTU_BREAKER_PROBE_SECONDS; a provider's last known
    # balance counts for routing while younger than VTU_FLOAT_FRESH_SECONDS
    vtu_breaker_errors: int = 5
    vtu_breaker_cooldown_seconds: int = 60
    vtu_breaker_probe_seconds: int = 120
    vtu_float_fresh_seconds: int = 600
    # security
    login_max_failures: int = 5
    login_lockout_seconds: int = 900
    pin_max_failures: int = 5  # wrong transaction PINs before the PIN locks
    pin_lockout_seconds: int = 900
    session_max_age_seconds: int = 60 * 60 * 24 * 7
    # e-mail (app/mail): SMTP_URL smtp://user:pass@host:port (smtps:// = TLS, ?starttls=1), sender, and the
    # site's public base URL for links in e-mails
    smtp_url: str = ""
    mail_from: str = ""
    site_url: str = "http://127.0.0.1:8000"
    # tiers whose users may hold reseller API keys (API_KEY_TIERS, comma-separated)
    api_key_tiers: tuple[str, ...] = ("reseller",)
    # backups (`vtu backup create|restore`, app/core/backup.py): the folder ("" = .local/backups), how many
    # archives of a database `create` keeps (0 = all), and where pg_dump/pg_restore live ("" = searched)
    backup_dir: str = ""
    backup_keep: int = 14
    backup_pg_bin_dir: str = ""
    # processes (docs/architecture.md "Processes"): on SIGTERM a web process finishes the requests in flight
    # and a worker the jobs it runs for up to this long before cancelling them (SHUTDOWN_GRACE_SECONDS)
    shutdown_grace_seconds: int = 20
    # jobs one worker process runs at once (WORKER_CONCURRENCY; `vtu workers run --concurrency N`)
    worker_concurrency: int = 20
    problems: tuple[str, ...] = field(default=(), compare=False)

    @property
    def is_prod(self) -> bool:
        return self.app_env == "prod"

    @property
    def is_test(self) -> bool:
        return self.app_env == "test"

    @property
    def cookie_secure(self) -> bool:
        return self.is_prod

    @property
    def callbacks_reach_private(self) -> bool:
        """May a reseller callback go to a loopback/private address? Never in prod, whatever the flag."""
        return self.callback_allow_private and not self.is_prod

    def production_problems(self) -> list[str]:
        """Every reason this configuration must not serve real customers."""
        found = list(self.problems)
        if self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < 32:
            found.append("SECRET_KEY is missing, the development default, or shorter than 32 characters")
        if self.debug:
            found.append("DEBUG must be off in production")
        if not self.data_encryption_keys:
            found.append("DATA_ENCRYPTION_KEYS is required (exam PINs, BVN/NIN are stored encrypted)")
        if not self.allowed_hosts or "*" in self.allowed_hosts:
            found.append("ALLOWED_HOSTS must list the site's host names (comma-separated, not '*')")
        if any(net in ("0.0.0.0/0", "::/0") for net in self.trusted_proxies):
            found.append("TRUSTED_PROXIES must list the proxies' own networks, not every address")
        if self.metrics_token and len(self.metrics_token) < 32:
            found.append(
                "METRICS_TOKEN must be a random string of at least 32 characters (or unset: no /metrics)"
            )
        if self.callback_allow_private:
            found.append("CALLBACK_ALLOW_PRIVATE_ADDRESSES must be off in production")
        if not self.monnify_verify_before_credit:
            found.append(
                "MONNIFY_VERIFY_BEFORE_CREDIT must be on in production (a webhook is re-queried before "
                "any wallet is credited)"
            )
        if not self.database_url:
            found.append("DATABASE_URL is required (the embedded database is for development only)")
        elif self.database_owner_url and same_role(self.database_url, self.database_owner_url):
            found.append(
                "DATABASE_OWNER_URL and DATABASE_URL name the same role: the application must connect as a "
                'role that does not own the tables (README, "Database roles")'
            )
        if not self.redis_url:
            found.append("REDIS_URL is required (the embedded Redis is for development only)")
        if self.vtu_provider not in {"stub", "vtpass"}:
            found.append(f"VTU_PROVIDER must be 'stub' or 'vtpass' (got {self.vtu_provider!r})")
        if self.vtu_provider == "stub":
            found.append("VTU_PROVIDER=stub cannot sell real top-ups; set VTU_PROVIDER=vtpass")
        if self.vtu_provider == "vtpass":
            has_keys = self.vtpass_api_key and self.vtpass_public_key and self.vtpass_secret_key
            has_basic = self.vtpass_username and self.vtpass_password
            if not (has_keys or has_basic):
                found.append(
                    "VTPASS_API_KEY + VTPASS_PUBLIC_KEY + VTPASS_SECRET_KEY (or VTPASS_USERNAME + "
                    "VTPASS_PASSWORD) are required when VTU_PROVIDER=vtpass"
                )
            if len(self.vtpass_callback_token) < 16:
                found.append("VTPASS_CALLBACK_TOKEN must be a random string of at least 16 characters")
        for name in ("monnify_api_key", "monnify_secret_key", "monnify_contract_code"):
            if not getattr(self, name):
                found.append(f"{name.upper()} is required")
        from app.mail.config import production_mail_problems  # kept with the mail domain

        found.extend(production_mail_problems(self))
        return found


def load_settings(env_file: Path | None = None) -> Settings:
    """Build settings from the process environment (after an optional .env file)."""
    load_dotenv(env_file or BASE_DIR / ".env", override=False)
    env = os.environ.get
    problems: list[str] = []
    app_env = (env("APP_ENV") or "dev").strip().lower()
    if app_env not in {"dev", "test", "prod"}:
        problems.append(f"APP_ENV must be dev, test or prod (got {app_env!r})")
    hosts = _hosts(env("ALLOWED_HOSTS"), problems)
    if not hosts and app_env != "prod":
        hosts = ("*",)
    database_url = (env("DATABASE_URL") or "").strip()
    owner_url = (env("DATABASE_OWNER_URL") or "").strip()
    pgbouncer = _bool(env("DATABASE_PGBOUNCER"), default=False)
    if owner_url:
        problems.extend(owner_url_problems(database_url, owner_url, pooled=pgbouncer))
    return Settings(
        app_env=app_env,
        debug=_bool(env("DEBUG"), default=False),
        secret_key=env("SECRET_KEY") or DEV_SECRET_KEY,
        database_url=normalise_database_url(database_url) if database_url else "",
        database_owner_url=normalise_database_url(owner_url) if owner_url else "",
        database_pool_size=_int("DATABASE_POOL_SIZE", 20, problems) or 1,
        database_max_overflow=_int("DATABASE_MAX_OVERFLOW", 0, problems),
        database_pgbouncer=pgbouncer,
        redis_url=(env("REDIS_URL") or "").strip(),
        allowed_hosts=hosts,
        trusted_proxies=_networks("TRUSTED_PROXIES", env("TRUSTED_PROXIES"), problems),
        callback_allow_private=_bool(env("CALLBACK_ALLOW_PRIVATE_ADDRESSES"), default=app_env != "prod"),
        log_level=(env("LOG_LEVEL") or "INFO").upper(),
        log_dir=env("LOG_DIR") or "",
        sentry_dsn=(env("SENTRY_DSN") or "").strip(),
        sentry_traces_sample_rate=_rate(
            "SENTRY_TRACES_SAMPLE_RATE", env("SENTRY_TRACES_SAMPLE_RATE"), problems
        ),
        metrics_token=(env("METRICS_TOKEN") or "").strip(),
        data_encryption_keys=_encryption_keys(env("DATA_ENCRYPTION_KEYS"), problems),
        vtu_provider=(env("VTU_PROVIDER") or "stub").strip().lower(),
        vtpass_base_url=(env("VTPASS_BASE_URL") or "https://sandbox.vtpass.com").rstrip("/"),
        vtpass_api_key=env("VTPASS_API_KEY") or "",
        vtpass_public_key=env("VTPASS_PUBLIC_KEY") or "",
        vtpass_secret_key=env("VTPASS_SECRET_KEY") or "",
        vtpass_username=env("VTPASS_USERNAME") or "",
        vtpass_password=env("VTPASS_PASSWORD") or "",
        vtpass_callback_token=env("VTPASS_CALLBACK_TOKEN") or "",
        clubkonnect_base_url=(env("CLUBKONNECT_BASE_URL") or "https://www.nellobytesystems.com").rstrip("/"),
        clubkonnect_user_id=(env("CLUBKONNECT_USER_ID") or "").strip(),
        clubkonnect_api_key=env("CLUBKONNECT_API_KEY") or "",
        clubkonnect_callback_token=env("CLUBKONNECT_CALLBACK_TOKEN") or "",
        monnify_base_url=(env("MONNIFY_BASE_URL") or "https://sandbox.monnify.com").rstrip("/"),
        monnify_api_key=env("MONNIFY_API_KEY") or "",
        monnify_secret_key=env("MONNIFY_SECRET_KEY") or "",
        monnify_contract_code=env("MONNIFY_CONTRACT_CODE") or "",
        monnify_verify_before_credit=_bool(env("MONNIFY_VERIFY_BEFORE_CREDIT"), default=app_env == "prod"),
        monnify_allowed_ips=tuple(
            ip.strip() for ip in (env("MONNIFY_ALLOWED_IPS") or "").split(",") if ip.strip()
        ),
        requery_schedule_seconds=_schedule(env("VTU_REQUERY_SCHEDULE_SECONDS"), problems),
        funding_fee_flat_kobo=_int("FUNDING_FEE_FLAT_KOBO", 0, problems),
        funding_fee_percent=_decimal_percent("FUNDING_FEE_PERCENT", "0", problems),
        funding_fee_cap_kobo=_int("FUNDING_FEE_CAP_KOBO", 0, problems),
        api_rate_limit_per_minute=_int("API_RATE_LIMIT_PER_MINUTE", 60, problems),
        api_daily_spend_limit_kobo=_int("API_DAILY_SPEND_LIMIT_KOBO", 0, problems),
        kyc_limits=parse_kyc_limits(
            os.environ.get("KYC_LIMITS", "" if app_env == "test" else DEFAULT_KYC_LIMITS),
            problems,
        ),
        kyc_fingerprint_key=(env("KYC_FINGERPRINT_KEY") or "").strip(),
        adjustment_approval_kobo=_int("ADJUSTMENT_APPROVAL_KOBO", 500_000, problems),
        alert_float_kobo=_int("ALERT_FLOAT_KOBO", 2_000_000, problems),
        alert_success_rate_percent=min(100, _int("ALERT_SUCCESS_RATE_PERCENT", 80, problems)),
        vtu_breaker_errors=max(1, _int("VTU_BREAKER_ERRORS", 5, problems)),
        vtu_breaker_cooldown_seconds=max(1, _int("VTU_BREAKER_COOLDOWN_SECONDS", 60, problems)),
        vtu_breaker_probe_seconds=max(1, _int("VTU_BREAKER_PROBE_SECONDS", 120, problems)),
        vtu_float_fresh_seconds=max(1, _int("VTU_FLOAT_FRESH_SECONDS", 600, problems)),
        login_max_failures=_int("LOGIN_MAX_FAILURES", 5, problems),
        login_lockout_seconds=_int("LOGIN_LOCKOUT_SECONDS", 900, problems),
        pin_max_failures=max(1, _int("PIN_MAX_FAILURES", 5, problems)),
        pin_lockout_seconds=_int("PIN_LOCKOUT_SECONDS", 900, problems),
        smtp_url=(env("SMTP_URL") or "").strip(),
        mail_from=(env("MAIL_FROM") or "").strip(),
        site_url=(env("SITE_URL") or "").strip().rstrip("/") or "http://127.0.0.1:8000",
        api_key_tiers=_tiers(env("API_KEY_TIERS"), problems),
        backup_dir=(env("BACKUP_DIR") or "").strip(),
        backup_keep=_int("BACKUP_KEEP", 14, problems),
        backup_pg_bin_dir=(env("BACKUP_PG_BIN_DIR") or "").strip(),
        shutdown_grace_seconds=_int("SHUTDOWN_GRACE_SECONDS", 20, problems),
        worker_concurrency=max(1, _int("WORKER_CONCURRENCY", 20, problems)),
        problems=tuple(problems),
    )


def validate(settings: Settings) -> None:
    """Raise one ConfigError naming every problem (all of them in prod, malformed values anywhere)."""
    problems = settings.production_problems() if settings.is_prod else list(settings.problems)
    from app.accounts.passwords import config_problems as password_problems
    from app.mail.config import mail_problems
    from app.referrals.config import config_problems  # REFERRAL_* rules, kept with their domain
    from app.vtu.config import config_problems as vtu_problems  # VTU_* rules, likewise

    problems.extend(config_problems())
    problems.extend(password_problems())
    problems.extend(vtu_problems(is_prod=settings.is_prod))
    problems.extend(p for p in mail_problems(settings) if p not in problems)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"Refusing to start (APP_ENV={settings.app_env}): fix these settings:\n{lines}")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
