#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need (aiosmtpd,
# the real SMTP server the integration tests talk to on loopback), then runs every
# unit test, the integration tests (real HTTP server, real sled directory, real SMTP
# server) and the fixture corpus.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
    echo "installing aiosmtpd (SMTP server for the integration tests)" >&2
    python3 -m pip install --quiet --disable-pip-version-check aiosmtpd \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages aiosmtpd
fi

# The benchmarks must keep compiling (they are run by hand: cargo bench).
cargo bench --no-run --quiet

# Two cores: run tests two at a time.
if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --test-threads 2 --no-fail-fast "$@"
else
    cargo test -- --test-threads 2 "$@"
fi

# End to end through a real Postfix (pipe transport → intake submit → intake →
# reply through Postfix to a mailbox). Needs root; skipped with a message otherwise.
# The binary the test build just made (same features as the tests: no rebuild).
tests/e2e/postfix.sh target/debug/intake
