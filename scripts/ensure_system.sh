#!/usr/bin/env bash
# Installs what pip cannot: Java 17 (for the local Spark Connect server) and the
# PostgreSQL/MariaDB JDBC jars, and the PostgreSQL and MariaDB servers that tests and the
# demo start privately, from Debian packages, only when missing.
set -euo pipefail
need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
[ -f /usr/share/java/postgresql.jar ] || need+=(libpostgresql-jdbc-java)
[ -f /usr/share/java/mariadb-java-client.jar ] || need+=(libmariadb-java)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
# tests/unit/test_deploy.py renders deploy/compose.yaml with it (no container engine needed)
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 \
  || need+=(docker-compose)
command -v chromium >/dev/null 2>&1 || need+=(chromium)  # the dashboard's headless browser test
# the portal's browser tests drive Chromium through Selenium with Debian's matching driver
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# deploy/nginx: the authenticating proxy in front of the Dagster UI, tested with a real nginx
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
# bench/service/list_pipelines.py: a C load generator beside the Python client (make bench-service)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing system packages: ${need[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
