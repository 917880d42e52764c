#!/bin/sh
# Renders deploy/nginx/datahub.conf with the three upstream variables (and only them: nginx's
# own $variables stay) and runs nginx in the foreground.
set -eu
: "${DATAHUB_SERVICE_UPSTREAM:?set DATAHUB_SERVICE_UPSTREAM to host:port of datahub serve}"
: "${DAGSTER_WEBSERVER_UPSTREAM:?set DAGSTER_WEBSERVER_UPSTREAM to host:port of dagster-webserver}"
: "${DATAHUB_PROXY_PORT:=8080}"
export DATAHUB_PROXY_PORT
envsubst '${DATAHUB_PROXY_PORT} ${DATAHUB_SERVICE_UPSTREAM} ${DAGSTER_WEBSERVER_UPSTREAM}' \
  < /etc/nginx/templates/datahub.conf > /etc/nginx/conf.d/datahub.conf
nginx -t -q
exec nginx -g 'daemon off;'
