#!/usr/bin/env bash
# The fleet history's database, made once when the PostgreSQL volume is
# empty (Compose mounts this in the image's /docker-entrypoint-initdb.d):
# a role for NDAS that owns the `ndas` database (NDAS creates and migrates
# its tables itself) and a read-only role for Grafana, which sees every
# table NDAS makes. The passwords come from the environment (.env, written
# by deploy/compose-init.sh), never from a file in the repository.
set -euo pipefail
: "${NDAS_DB_PASSWORD:?}" "${GRAFANA_DB_PASSWORD:?}"
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  -v ndas_password="$NDAS_DB_PASSWORD" -v grafana_password="$GRAFANA_DB_PASSWORD" <<'SQL'
CREATE ROLE ndas LOGIN PASSWORD :'ndas_password';
CREATE ROLE grafana LOGIN PASSWORD :'grafana_password';
CREATE DATABASE ndas OWNER ndas;
REVOKE ALL ON DATABASE ndas FROM PUBLIC;
GRANT CONNECT ON DATABASE ndas TO ndas, grafana;
\connect ndas
GRANT USAGE ON SCHEMA public TO grafana;
ALTER DEFAULT PRIVILEGES FOR ROLE ndas IN SCHEMA public GRANT SELECT ON TABLES TO grafana;
SQL
