#!/bin/sh
# Runs once, when the PostgreSQL volume is first initialised: the image has created the MLflow
# database ($POSTGRES_DB); add the Prefect one, owned by the same user.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c "CREATE DATABASE \"${PREFECT_DB:-prefect}\" OWNER \"$POSTGRES_USER\";"
