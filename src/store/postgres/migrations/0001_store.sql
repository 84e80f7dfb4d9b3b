-- intake store, schema 1: messages with their raw bytes and decisions, tickets
-- and their look-up indexes, the reply queue and sent log, keyed collections.
-- Records are stored as the engine's encoded values (bytea: tagged, zstd
-- compressed JSON); the plain columns beside them are what queries and the
-- reporting views use. Times are whole seconds (or milliseconds where named)
-- since 1970, as bigint.

-- One row: the next ticket and message numbers. Filings update it in their
-- transaction (never a sequence: a rolled-back filing must use no number), which
-- also makes filings of all nodes take turns.
CREATE TABLE intake_counters (
    id          int PRIMARY KEY CHECK (id = 1),
    next_ticket bigint NOT NULL,
    next_seq    bigint NOT NULL
);

CREATE TABLE messages (
    seq         bigint PRIMARY KEY,
    -- Idempotent re-delivery: the same message posted twice (to two nodes at
    -- once) is filed once.
    dedup_key   bytea NOT NULL UNIQUE,
    message_id  text,
    sender      text NOT NULL,
    received_s  bigint NOT NULL,
    ticket      bigint,
    outcome     text NOT NULL,
    findings    text[] NOT NULL,
    rules_revision text NOT NULL,
    record      bytea NOT NULL,
    -- The raw message as packed by the engine (tag byte, then plain bytes or a
    -- zstd frame), its length and the BLAKE3 hash of the unpacked bytes.
    raw         bytea NOT NULL,
    raw_len     bigint NOT NULL,
    raw_hash    bytea NOT NULL
);
-- Messages of a sender in a time window (the flood look-up).
CREATE INDEX messages_sender ON messages (sender, received_s);
CREATE INDEX messages_ticket ON messages (ticket) WHERE ticket IS NOT NULL;

CREATE TABLE tickets (
    number      bigint PRIMARY KEY,
    status      text NOT NULL,
    client_id   text,
    owner       text NOT NULL,
    subject     text NOT NULL,
    created_s   bigint NOT NULL,
    updated_s   bigint NOT NULL,
    sla_level   text,
    reaction_due_s bigint,
    in_work_due_s  bigint,
    record      bytea NOT NULL
);
CREATE INDEX tickets_client ON tickets (client_id, number) WHERE client_id IS NOT NULL;

-- Owner keys (`client:MI-1`, `sender:a@b`) of each ticket, with the normalised
-- core subject: open tickets of an owner, and of an owner about a subject.
CREATE TABLE ticket_owners (
    owner_key    text NOT NULL,
    created_s    bigint NOT NULL,
    number       bigint NOT NULL REFERENCES tickets (number),
    subject_norm text NOT NULL,
    PRIMARY KEY (owner_key, created_s, number)
);
CREATE INDEX ticket_owners_about ON ticket_owners (owner_key, subject_norm, created_s);

-- Message-IDs of stored messages and sent replies → their ticket.
CREATE TABLE thread (
    message_id text PRIMARY KEY,
    ticket     bigint NOT NULL
);

-- Replies sent to an address (the daily limit per address).
CREATE TABLE reply_log (
    address text NOT NULL,
    at_s    bigint NOT NULL
);
CREATE INDEX reply_log_address ON reply_log (address, at_s);

-- The reply queue: due time, and which node holds it until when (a lease).
CREATE TABLE outbox (
    key        bytea PRIMARY KEY,
    next_ms    bigint NOT NULL,
    item       bytea NOT NULL,
    lease_ms   bigint,
    claimed_by text
);
CREATE INDEX outbox_due ON outbox (next_ms, key);

CREATE TABLE sent (
    key    bytea PRIMARY KEY,
    at_s   bigint NOT NULL,
    ok     boolean NOT NULL,
    record bytea NOT NULL
);

-- Keyed collections (sessions, sign-in links, counters, rate limits, ...).
CREATE TABLE kv (
    collection text NOT NULL,
    key        bytea NOT NULL,
    value      bytea NOT NULL,
    expires_ms bigint,
    PRIMARY KEY (collection, key)
);
CREATE INDEX kv_expiry ON kv (collection, expires_ms) WHERE expires_ms IS NOT NULL;

-- Written by readiness probes.
CREATE TABLE probe (
    node text PRIMARY KEY,
    at_s bigint NOT NULL
);
