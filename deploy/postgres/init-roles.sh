#!/bin/sh
# Run once by the postgres image on an empty data directory (/docker-entrypoint-initdb.d): the two roles of
# README "Database roles" and the database, owned by the owner role. Passwords come from the environment.
set -eu
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v owner_password="$VTU_OWNER_PASSWORD" -v app_password="$VTU_APP_PASSWORD" <<'SQL'
CREATE ROLE vtu_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'owner_password';
CREATE ROLE vtu_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'app_password';
CREATE DATABASE vtu OWNER vtu_owner;
SQL
