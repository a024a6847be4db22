#!/usr/bin/env bash
# Apache Kafka from its Maven Central jars (there is no other source we can reach).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
pom="$ROOT/deploy/local/kafka/pom.xml"
dest="$MESHLENS_CACHE/kafka/$(sha256sum "$pom" | cut -c1-12)"
if [ -f "$dest/.complete" ]; then exit 0; fi
rm -rf "$dest.tmp"
mvn -q -B -Dstyle.color=never -f "$pom" -Dmaven.repo.local="$MESHLENS_CACHE/m2" \
  dependency:copy-dependencies -DoutputDirectory="$dest.tmp" -DincludeScope=runtime
rm -rf "$dest" && mv "$dest.tmp" "$dest" && touch "$dest/.complete"
ln -sfn "$dest" "$MESHLENS_CACHE/kafka/current"
