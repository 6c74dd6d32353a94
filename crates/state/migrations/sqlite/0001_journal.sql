-- The on-call journal and accounts, SQLite dialect (keep in step with ../postgres).

-- One firing episode of one alert instance, from its acknowledgement on.
CREATE TABLE episodes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    alert_id TEXT NOT NULL,
    alertname TEXT NOT NULL,
    labels TEXT NOT NULL,
    acknowledged_by TEXT NOT NULL,
    acknowledged_at_ms BIGINT NOT NULL,
    resolved_at_ms BIGINT,
    reminded_at_ms BIGINT,
    UNIQUE (fingerprint, started_at_ms)
);
CREATE INDEX episodes_by_fingerprint ON episodes (fingerprint, started_at_ms);

-- Journal entries, append-only: a correction is the next revision.
CREATE TABLE revisions (
    episode_id BIGINT NOT NULL REFERENCES episodes (id),
    revision BIGINT NOT NULL,
    author TEXT NOT NULL,
    written_at_ms BIGINT NOT NULL,
    alert_id TEXT NOT NULL,
    root_cause TEXT NOT NULL,
    remediation TEXT NOT NULL,
    contract_changed BOOLEAN NOT NULL,
    contract TEXT,
    contract_pr TEXT,
    triage TEXT NOT NULL,
    timeline TEXT NOT NULL,
    PRIMARY KEY (episode_id, revision)
);
CREATE INDEX revisions_by_time ON revisions (written_at_ms);

CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
