# Tasks for the VTU platform. Run through uv so a bare machine needs nothing else: `uv run just <recipe>`.
set shell := ["bash", "-euo", "pipefail", "-c"]

# list recipes
default:
    @just --list

# embedded PostgreSQL + Redis, migrations, demo data, web (reload) on :8000 and a SAQ worker
dev *ARGS:
    uv run vtu dev {{ARGS}}

# the whole test suite on real PostgreSQL + Redis (embedded unless DATABASE_URL / REDIS_URL are set)
test *ARGS: bytecode
    uv run pytest -n 2 --dist loadfile -q {{ARGS}}

# integration tests only (CI runs them a second time against the machine's PostgreSQL 15 / Redis)
test-integration *ARGS: bytecode
    uv run pytest -n 2 --dist loadfile -q tests/integration {{ARGS}}

# Where PYTHONDONTWRITEBYTECODE is set, every Python process (each test worker, each `vtu` the tests start)
# would otherwise compile Litestar, SQLAlchemy, ... from source on every start: about 2.5 s of CPU each.

# .pyc files for the installed packages and our sources (a changed source is recompiled in memory until then)
bytecode:
    uv sync --quiet --compile-bytecode
    uv run python -m compileall -q app workers tests

# ruff lint + format check
lint:
    uv run ruff check .
    uv run ruff format --check .

# format the code
fmt:
    uv run ruff format .
    uv run ruff check --fix .

# static types of app/
typecheck:
    uv run mypy

# apply migrations
migrate:
    uv run vtu database upgrade --no-prompt

# new migration from model changes: just makemigration "add things"
makemigration MESSAGE:
    uv run vtu database make-migrations -m "{{MESSAGE}}" --no-prompt
    uv run ruff check --fix --quiet db/migrations
    uv run ruff format --quiet db/migrations

# SAQ worker (jobs + cron)
worker:
    uv run vtu workers run

# a benchmark from bench/: just bench ledger
bench NAME *ARGS:
    uv run python -m bench.{{NAME}} {{ARGS}}

# the fault drill (README "Fault drill"): its own stack, kill -9 / PostgreSQL / Redis / VTpass faults, <= 6 min
drill *ARGS:
    uv run python -m drill {{ARGS}}

# stop the embedded PostgreSQL and Redis
stop:
    uv run vtu services stop
