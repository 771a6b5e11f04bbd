#!/usr/bin/env bash
# System-side prerequisites of the test suite (the Python side is pyproject's
# `test` extra). Idempotent and non-interactive: safe to run on every CI start.
#
#  * Debian's chromium at /usr/bin/chromium: Playwright cannot download its
#    own browser here, so tests/support/browser.py drives this one.
#  * tests/browser/node_modules from the committed package-lock.json: the
#    STOCK @segment/analytics-next whose prebuilt UMD bundle the tracker
#    tests serve to that browser (no bundler, no CDN).
#
# Quiet when all is well; any failure stops the script with a message.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BROWSER_TESTS="$ROOT/tests/browser"

die() { echo "install-system: $*" >&2; exit 1; }
trap 'die "failed at line $LINENO: $BASH_COMMAND"' ERR

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo -n "$@"
  else die "need root (or sudo) for: $*"
  fi
}

apt_install() {
  local log
  log="$(mktemp)"
  if ! { as_root apt-get update -qq &&
         as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
           --no-install-recommends "$@"; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    die "apt-get install $* failed"
  fi
  rm -f "$log"
}

# --- chromium ---------------------------------------------------------------
if [ ! -x /usr/bin/chromium ]; then
  echo "install-system: installing Debian chromium"
  # fonts-liberation: so pages render text in screenshots (a recommend we keep).
  apt_install chromium fonts-liberation
fi
version="$(/usr/bin/chromium --version 2>/dev/null)" || die "/usr/bin/chromium does not run"
[ -n "$version" ] || die "/usr/bin/chromium printed no version"

# --- node / npm -------------------------------------------------------------
if ! command -v npm >/dev/null; then
  echo "install-system: installing Debian nodejs + npm"
  apt_install nodejs npm
fi

# --- @segment/analytics-next ------------------------------------------------
# `npm ci` wipes and refills node_modules; skip it when the lockfile that
# filled node_modules is the committed one (stamp written after success).
lock="$BROWSER_TESTS/package-lock.json"
stamp="$BROWSER_TESTS/node_modules/.crmrules-lock.sha256"
[ -f "$lock" ] || die "$lock missing"
want="$(sha256sum "$lock" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  npm_log="$(mktemp)"
  if ! (cd "$BROWSER_TESTS" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >"$npm_log" 2>&1; then
    cat "$npm_log" >&2
    rm -f "$npm_log"
    die "npm ci in tests/browser failed"
  fi
  rm -f "$npm_log"
  echo "$want" >"$stamp"
fi
umd="$BROWSER_TESTS/node_modules/@segment/analytics-next/dist/umd/index.js"
[ -s "$umd" ] || die "$umd missing after npm ci"
