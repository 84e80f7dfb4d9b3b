#!/usr/bin/env bash
# End to end through a real Postfix: swaks delivers mail to the support address,
# Postfix's pipe transport hands it to `intake submit`, intake files it; intake's
# reply goes back through the same Postfix to a local mailbox, which we read.
#
# Everything runs on loopback in a private Postfix instance (its own config,
# queue and mailbox directories under a temporary directory); the system's
# Postfix configuration is not touched. Needs root (apt-get, postfix). Idempotent:
# every run starts from a fresh directory and the trap stops and removes it.
#
# usage: tests/e2e/postfix.sh [path/to/intake]     (default: target/release/intake, built if missing)
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

if [ "$(id -u)" != 0 ]; then
    echo "postfix e2e: skipped (needs root for apt-get and postfix)" >&2
    exit 0
fi

intake=${1:-}
if [ -z "$intake" ]; then
    cargo build --release --quiet --bin intake
    intake=$repo/target/release/intake
fi
intake=$(readlink -f "$intake")

if ! command -v postfix >/dev/null || ! command -v swaks >/dev/null; then
    echo "postfix e2e: installing postfix and swaks from Debian" >&2
    # Keep the package from starting the system instance on port 25.
    policy=/usr/sbin/policy-rc.d
    made_policy=
    if [ ! -e $policy ]; then
        printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy && made_policy=1
    fi
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix swaks >/dev/null
    [ -n "$made_policy" ] && rm -f $policy
fi

work=$(mktemp -d /tmp/intake-postfix.XXXXXX)
etc=$work/etc
# Two ports the kernel says are free now (a random pick from a fixed range could
# land on a port the test suite's servers were still using, and Postfix's master
# then fails to start).
read -r pf_port api_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')
cleanup() {
    postfix -c "$etc" stop >/dev/null 2>&1 || true
    [ -n "${server:-}" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    if [ "${keep:-}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() { echo "postfix e2e: FAILED: $*" >&2; keep=1; tail -n 40 "$work/maillog" >&2 2>/dev/null || true; exit 1; }

# intake, with a token nobody (the pipe's user) can read: a test-only choice.
mkdir -p "$etc" "$work/mail" "$work/data"
token=e2e-gateway-token
echo -n $token > "$work/gateway.token"
chmod 0644 "$work/gateway.token"
chmod 0755 "$work"
INTAKE__HTTP__LISTEN=127.0.0.1:$api_port INTAKE__STORE__PATH="$work/data" \
INTAKE__RULES__PATH="$repo/rules" INTAKE__CONTRACTS__FILE="$repo/fixtures/contracts.toml" \
INTAKE__SMTP__RELAY=127.0.0.1:$pf_port INTAKE__SMTP__FROM=support@support.test \
INTAKE__SMTP__MAX_BACKOFF_SECS=1 INTAKE__AUTH__GATEWAY_TOKEN=$token \
INTAKE__AUTH__STAFF_TOKEN=e2e-staff INTAKE__AUTH__ADMIN_TOKEN=e2e-admin \
RUST_LOG=warn "$intake" serve 2> "$work/intake.log" &
server=$!

# A private Postfix instance on 127.0.0.1:$pf_port.
cp /etc/postfix/master.cf "$etc/master.cf"
cat > "$etc/main.cf" <<CF
compatibility_level = 3.6
config_directory = $etc
queue_directory = $work/spool
data_directory = $work/lib
mail_owner = postfix
myhostname = mx.support.test
mydomain = support.test
myorigin = support.test
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file_prefixes = $work
maillog_file = $work/maillog
smtpd_tls_security_level = none
smtp_tls_security_level = none
smtputf8_enable = no
alias_maps =
alias_database =
# The support address goes to intake through the pipe transport below.
relay_domains = support.test
transport_maps = texthash:$etc/transport
intake_destination_recipient_limit = 50
# Replies for clients land in one local mailbox file we can read.
virtual_mailbox_domains = client.test
virtual_mailbox_base = $work/mail
virtual_mailbox_maps = static:mailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
CF
echo "support@support.test intake:" > "$etc/transport"
postconf -c "$etc" -M# smtp/inet >/dev/null
postconf -c "$etc" -M "127.0.0.1:$pf_port/inet=127.0.0.1:$pf_port inet n - n - - smtpd"
postconf -c "$etc" -M "intake/unix=intake unix - n n - 4 pipe flags=Rq user=nobody argv=$intake submit --url http://127.0.0.1:$api_port/v1/messages --token-file $work/gateway.token --connect-timeout 5 --timeout 60 -f \${sender} -- \${recipient}"
postconf -c "$etc" -F '*/*/chroot = n'
chown 65534:65534 "$work/mail"
mkdir -p "$work/spool" "$work/lib"
chown postfix "$work/lib"
postfix -c "$etc" check 2>&1 | grep -v "^$" >&2 || true
started=
for _ in 1 2 3; do
    if out=$(postfix -c "$etc" start 2>&1); then started=1; break; fi
    sleep 1
done
[ -n "$started" ] || fail "postfix did not start: $out"

for _ in $(seq 100); do curl -fs "http://127.0.0.1:$api_port/healthz" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$api_port/healthz" >/dev/null || fail "intake did not start"

# Two requests from clients and one re-delivery of the first. A re-delivery is the
# same message again, so the Date is fixed: swaks would otherwise stamp each send
# with the current second, and a send a second later is a new message that only
# reuses a Message-ID (filed by the policy, as a duplicate of the first).
send() { swaks --silent 2 --server 127.0.0.1 --port "$pf_port" --from "$1" --to support@support.test \
    --header "Subject: $2" --header "Message-Id: <$3>" --header "Date: Wed, 25 Nov 2026 09:00:00 +0000" \
    --body "Hello, our STB-4K boxes lose the EPG after the update. Steps: 1. update 2. reboot 3. EPG empty. Contract MI-10234." \
    || fail "swaks could not deliver $3"; }
send anna@client.test "EPG empty on STB-4K after update" e2e-1@client.test
send boris@client.test "Encoder TX-8 drops the multicast stream" e2e-2@client.test
send anna@client.test "EPG empty on STB-4K after update" e2e-1@client.test

ticket() { curl -fs "http://127.0.0.1:$api_port/v1/tickets/$1" -H "Authorization: Bearer e2e-staff"; }
for _ in $(seq 300); do
    ticket 100002 >/dev/null 2>&1 && break
    sleep 0.1
done
ticket 100001 >/dev/null || fail "ticket 100001 was not created"
ticket 100002 >/dev/null || fail "ticket 100002 was not created"
! ticket 100003 >/dev/null 2>&1 || fail "the re-delivered message was filed twice"
ticket 100001 | grep -q '"mail_from":"anna@client.test"' || fail "envelope sender not stored: $(ticket 100001)"

mbox=$work/mail/mailbox
for _ in $(seq 300); do
    [ "$(grep -c '^Subject:.*\[Ticket#' "$mbox" 2>/dev/null || echo 0)" -ge 2 ] && break
    sleep 0.1
done
grep -q '^Subject:.*\[Ticket#100001\]' "$mbox" 2>/dev/null || fail "no reply for ticket 100001 in $mbox"
grep -q '^Subject:.*\[Ticket#100002\]' "$mbox" || fail "no reply for ticket 100002"
grep -q '^Auto-Submitted: auto-replied' "$mbox" || fail "replies lack Auto-Submitted"
replies=$(grep -c '^Subject:.*\[Ticket#' "$mbox")
[ "$replies" = 2 ] || fail "expected 2 replies, found $replies"
echo "postfix e2e: ok (2 tickets filed through the pipe transport, re-delivery filed once, 2 replies delivered to the mailbox)"
