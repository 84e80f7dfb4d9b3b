#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need (aiosmtpd,
# the real SMTP server the integration tests talk to on loopback), then runs every
# unit test, the integration tests (real HTTP server, real sled directory, real SMTP
# server, the portal in a real headless Chromium) and the fixture corpus.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
    echo "installing aiosmtpd (SMTP server for the integration tests)" >&2
    python3 -m pip install --quiet --disable-pip-version-check aiosmtpd \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages aiosmtpd
fi

# The portal's browser tests drive Debian's Chromium through chromedriver.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    echo "installing chromium and chromium-driver (portal browser tests)" >&2
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi

# PostgreSQL: a private cluster in a temporary directory on a free loopback port
# (installs Debian's postgresql when missing), stopped at the end. The store's
# PostgreSQL tests each make a database of their own on it.
if [ -z "${INTAKE_TEST_PG_URL:-}" ]; then
    eval "$(scripts/postgres.sh start)"
    trap 'scripts/postgres.sh stop "$INTAKE_PG_DIR"' EXIT
fi
export INTAKE_TEST_PG_URL

# The spam tests (tests/it/spam.rs) start Debian's Rspamd on loopback with a private
# configuration (scripts/rspamd-private.sh: no Redis, no network lookups, a temp dir).
if ! command -v rspamd >/dev/null 2>&1; then
    echo "installing rspamd (spam verdict tests)" >&2
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends rspamd >/dev/null
    # The package's own service is not ours to run: the tests start their own.
    $SUDO systemctl disable --now rspamd >/dev/null 2>&1 || $SUDO service rspamd stop >/dev/null 2>&1 || true
fi

# The benchmarks and examples must keep compiling (they are run by hand: cargo bench,
# benches/load.sh). Built in the dev profile, reusing the test build's dependencies.
cargo build --release --benches --examples --quiet

# Two cores: run tests two at a time.
if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --release --test-threads 2 --no-fail-fast "$@"
else
    cargo test --release -- --test-threads 2 "$@"
fi

# The integration tests that write and read the store, again on PostgreSQL (the
# unit suite of the store already runs once per engine above).
if [ $# -eq 0 ]; then
    PG_GROUPS='test(/^(hook|lifecycle|outbox|redelivery|portal)::/)'
    if command -v cargo-nextest >/dev/null 2>&1; then
        INTAKE_IT_ENGINE=postgres cargo nextest run --release --test-threads 2 --no-fail-fast --test it -E "$PG_GROUPS"
    else
        INTAKE_IT_ENGINE=postgres cargo test --release --test it -- --test-threads 2 hook:: lifecycle:: outbox:: redelivery:: portal::
    fi
fi

# End to end through a real Postfix (pipe transport → intake submit → intake →
# reply through Postfix to a mailbox). Needs root; skipped with a message otherwise.
# The binary the test build just made (same features as the tests: no rebuild).
tests/e2e/postfix.sh target/release/intake
