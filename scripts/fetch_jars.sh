#!/usr/bin/env bash
# Fetches the S3A connector for the local Spark Connect server: org.apache.hadoop:hadoop-aws
# of the Hadoop version pyspark ships (jars/hadoop-client-api-<v>.jar) and the AWS SDK v2
# modules it needs (s3, s3-transfer-manager, sts and their dependencies, not the ~600 MB
# `bundle`), with Maven, into a cache folder that is never committed:
#   ${DATAHUB_JARS_DIR:-~/.cache/datahub/jars}/hadoop-aws-<v>/
# Jars pyspark already ships (netty, slf4j, httpclient/httpcore, commons-*) are left out so the
# server has one copy of each. Once cached this does nothing (works offline).
# Usage: scripts/fetch_jars.sh [python]   (default .venv/bin/python)
set -euo pipefail
PY=${1:-.venv/bin/python}
SPARK_JARS=$("$PY" -c 'import pathlib, pyspark; print(pathlib.Path(pyspark.__file__).parent / "jars")')
API=$(ls "$SPARK_JARS"/hadoop-client-api-*.jar | head -n1)
HADOOP=$(basename "$API" .jar); HADOOP=${HADOOP#hadoop-client-api-}
DEST=${DATAHUB_JARS_DIR:-$HOME/.cache/datahub/jars}/hadoop-aws-$HADOOP
[ -f "$DEST/.complete" ] && exit 0
if ! command -v mvn >/dev/null 2>&1; then  # needed once, to fetch; Debian's maven package
  echo "installing maven (once, to fetch hadoop-aws $HADOOP)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends maven >/dev/null \
    || { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends maven >/dev/null; }
fi
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
# the AWS SDK version hadoop-aws was built against (its `bundle` dependency)
cat > "$WORK/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>datahub</groupId><artifactId>s3a-jars</artifactId><version>1</version>
  <dependencies><dependency><groupId>org.apache.hadoop</groupId><artifactId>hadoop-aws</artifactId>
    <version>$HADOOP</version></dependency></dependencies></project>
POM
SDK=$(cd "$WORK" && mvn -q -B dependency:list -DincludeArtifactIds=bundle -DoutputFile=sdk.txt >/dev/null \
      && grep -o 'software.amazon.awssdk:bundle:jar:[^:]*' sdk.txt | cut -d: -f4)
[ -n "$SDK" ] || { echo "fetch_jars.sh: cannot tell the AWS SDK version of hadoop-aws $HADOOP" >&2; exit 1; }
sdk_dep() { echo "<dependency><groupId>software.amazon.awssdk</groupId><artifactId>$1</artifactId><version>$SDK</version></dependency>"; }
cat > "$WORK/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>datahub</groupId><artifactId>s3a-jars</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.hadoop</groupId><artifactId>hadoop-aws</artifactId>
      <version>$HADOOP</version>
      <exclusions><exclusion><groupId>software.amazon.awssdk</groupId><artifactId>bundle</artifactId></exclusion></exclusions>
    </dependency>
    $(sdk_dep s3) $(sdk_dep s3-transfer-manager) $(sdk_dep sts)
  </dependencies></project>
POM
echo "fetching hadoop-aws $HADOOP and AWS SDK $SDK (s3, s3-transfer-manager, sts) into $DEST"
(cd "$WORK" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime \
   -DexcludeGroupIds=io.netty,org.slf4j,org.apache.httpcomponents,commons-logging,commons-codec \
   -DoutputDirectory="$WORK/jars")
rm -rf "$DEST"; mkdir -p "$(dirname "$DEST")"
mv "$WORK/jars" "$DEST"
touch "$DEST/.complete"
echo "$(ls "$DEST"/*.jar | wc -l) jars, $(du -sh "$DEST" | cut -f1) in $DEST"
