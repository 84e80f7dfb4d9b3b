#!/usr/bin/env bash
# Runs Rspamd in the foreground on 127.0.0.1:PORT with a private configuration in DIR
# (created): the Debian package's stock rules, with its local.d/override.d taken from
# DIR, no controller or proxy worker, no Redis (so no Bayes, greylisting, rate limits
# or reputation), no network lookups (DNS goes to a closed loopback port, and the
# modules that only ask the network are off), state, cache and pid in DIR.
# Used by the integration test (tests/it/spam.rs) and benches/spam_corpus.sh.
#   scripts/rspamd-private.sh DIR PORT
set -euo pipefail
dir=${1:?usage: rspamd-private.sh DIR PORT}
port=${2:?usage: rspamd-private.sh DIR PORT}
command -v rspamd >/dev/null || { echo "rspamd is not installed (apt-get install rspamd)" >&2; exit 69; }
mkdir -p "$dir/local.d" "$dir/override.d" "$dir/db" "$dir/run" "$dir/log"
cat > "$dir/override.d/worker-normal.inc" <<CONF
bind_socket = "127.0.0.1:$port";
count = 1;
CONF
echo 'enabled = false;' > "$dir/override.d/worker-controller.inc"
echo 'enabled = false;' > "$dir/override.d/worker-proxy.inc"
echo 'enabled = false;' > "$dir/override.d/worker-fuzzy.inc"
cat > "$dir/override.d/logging.inc" <<'CONF'
type = "console";
level = "error";
CONF
cat > "$dir/local.d/options.inc" <<'CONF'
dns { nameserver = ["127.0.0.1:1"]; timeout = 0.1s; retransmits = 0; }
CONF
# Modules that need Redis or exist to ask other hosts (DNS lists, hash services,
# URL and IP reputation, SPF/DKIM/DMARC lookups: our MTA does those and reports them
# in Authentication-Results).
for m in rbl surbl fuzzy_check dkim_signing arc ratelimit greylist replies neural \
         reputation url_reputation asn emails dcc external_services mx_check phishing \
         spf dkim dmarc history_redis clickhouse elastic metadata_exporter dynamic_conf \
         once_received whitelist; do
    echo 'enabled = false;' > "$dir/local.d/$m.conf"
done
cd "$dir"
user=$(id -un); group=$(id -gn)
exec rspamd -f -u "$user" -g "$group" -c /etc/rspamd/rspamd.conf \
    --var LOCAL_CONFDIR="$dir" --var DBDIR="$dir/db" --var RUNDIR="$dir/run" --var LOGDIR="$dir/log"
