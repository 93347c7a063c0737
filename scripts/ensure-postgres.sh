#!/usr/bin/env bash
# Makes sure a PostgreSQL server binary is installed for the tests, which start a private
# cluster of their own (tests/conftest.py). Installs Debian's postgresql when it is missing and
# we are root; otherwise says why the PostgreSQL tests will be skipped.
set -uo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing PostgreSQL (Debian package) for the tests ..."
  export DEBIAN_FRONTEND=noninteractive
  (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null) \
    || echo "WARNING: could not install PostgreSQL; its tests will be skipped with this reason"
else
  echo "WARNING: no PostgreSQL server and not root to install it; its tests will be skipped"
fi
exit 0
