-- The control plane's schema, in the SQL both SQLite and PostgreSQL take:
-- text keys (SIDs), BIGINT times in microseconds since 1970 (0 = not yet),
-- money in millionths of the currency unit, flags as 0/1 integers.

CREATE TABLE accounts (
	sid            TEXT PRIMARY KEY,
	name           TEXT NOT NULL,
	status         TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'closed')),
	token_hash     TEXT NOT NULL,
	cps            INTEGER NOT NULL,
	sms_per_second INTEGER NOT NULL,
	max_concurrent INTEGER NOT NULL,
	class          TEXT NOT NULL,
	balance        BIGINT NOT NULL,
	low_balance    BIGINT NOT NULL,
	date_created   BIGINT NOT NULL,
	date_updated   BIGINT NOT NULL
);

CREATE TABLE users (
	sid          TEXT PRIMARY KEY,
	account_sid  TEXT NOT NULL REFERENCES accounts (sid),
	username     TEXT NOT NULL UNIQUE,
	realm        TEXT NOT NULL,
	ha1_md5      TEXT NOT NULL,
	ha1_sha256   TEXT NOT NULL,
	class        TEXT NOT NULL,
	date_created BIGINT NOT NULL,
	date_updated BIGINT NOT NULL
);
CREATE INDEX users_account ON users (account_sid);

CREATE TABLE numbers (
	sid           TEXT PRIMARY KEY,
	account_sid   TEXT NOT NULL REFERENCES accounts (sid),
	phone_number  TEXT NOT NULL UNIQUE,
	friendly_name TEXT NOT NULL,
	voice_enabled INTEGER NOT NULL,
	sms_enabled   INTEGER NOT NULL,
	voice_target  TEXT NOT NULL,
	sms_url       TEXT NOT NULL,
	date_created  BIGINT NOT NULL,
	date_updated  BIGINT NOT NULL
);
CREATE INDEX numbers_account ON numbers (account_sid);

-- Call logs outlive nothing they refer to: accounts are closed, never
-- deleted, and a transit call (no account) has account_sid ''.
CREATE TABLE calls (
	sid          TEXT PRIMARY KEY,
	account_sid  TEXT NOT NULL,
	from_number  TEXT NOT NULL,
	to_number    TEXT NOT NULL,
	direction    TEXT NOT NULL,
	status       TEXT NOT NULL,
	sip_code     INTEGER NOT NULL,
	from_trunk   TEXT NOT NULL,
	to_trunk     TEXT NOT NULL,
	ended_by     TEXT NOT NULL,
	node         TEXT NOT NULL,
	date_created BIGINT NOT NULL,
	start_time   BIGINT NOT NULL,
	end_time     BIGINT NOT NULL,
	duration     INTEGER NOT NULL,
	a_packets    BIGINT NOT NULL,
	a_lost       BIGINT NOT NULL,
	a_jitter     DOUBLE PRECISION NOT NULL,
	a_mos        DOUBLE PRECISION NOT NULL,
	b_packets    BIGINT NOT NULL,
	b_lost       BIGINT NOT NULL,
	b_jitter     DOUBLE PRECISION NOT NULL,
	b_mos        DOUBLE PRECISION NOT NULL,
	date_updated BIGINT NOT NULL
);
CREATE INDEX calls_account_created ON calls (account_sid, date_created);
CREATE INDEX calls_created ON calls (date_created);

-- SMS logs: written by messaging; retention erases bodies, then rows.
CREATE TABLE messages (
	sid          TEXT PRIMARY KEY,
	account_sid  TEXT NOT NULL,
	from_number  TEXT NOT NULL,
	to_number    TEXT NOT NULL,
	direction    TEXT NOT NULL,
	status       TEXT NOT NULL,
	body         TEXT NOT NULL,
	date_created BIGINT NOT NULL,
	date_updated BIGINT NOT NULL
);
CREATE INDEX messages_account_created ON messages (account_sid, date_created);
CREATE INDEX messages_created ON messages (date_created);

CREATE TABLE audit (
	sid          TEXT PRIMARY KEY,
	at           BIGINT NOT NULL,
	actor        TEXT NOT NULL,
	account_sid  TEXT NOT NULL,
	action       TEXT NOT NULL,
	resource     TEXT NOT NULL,
	before_value TEXT NOT NULL,
	after_value  TEXT NOT NULL
);
CREATE INDEX audit_account_at ON audit (account_sid, at);
CREATE INDEX audit_at ON audit (at);

-- Operator credentials (HTTP Basic user = sid).
CREATE TABLE admins (
	sid          TEXT PRIMARY KEY,
	token_hash   TEXT NOT NULL,
	date_created BIGINT NOT NULL
);

-- One row: bumped by every change of what admission caches (accounts,
-- users, numbers), so every node sharing the store reloads.
CREATE TABLE generation (
	id    INTEGER PRIMARY KEY,
	value BIGINT NOT NULL
);
INSERT INTO generation (id, value) VALUES (1, 1);
