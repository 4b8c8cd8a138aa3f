-- Billing (issue 8): what calls and messages cost, charged once.

-- A call's price (millionths of the currency unit), charged with its final
-- row.
ALTER TABLE calls ADD COLUMN price BIGINT NOT NULL DEFAULT 0;

-- One row per charge, its ref the call's or message's SID: a row written
-- again (a retried batch, a restart) finds its charge there and is not
-- charged twice. The debit of the account's balance and the charge row
-- are in the transaction that writes the call's or message's row.
CREATE TABLE charges (
	ref          TEXT PRIMARY KEY,
	account_sid  TEXT NOT NULL,
	amount       BIGINT NOT NULL,
	date_created BIGINT NOT NULL
);
CREATE INDEX charges_account ON charges (account_sid, date_created);

-- Low-balance notification: set when the balance falls to low_balance
-- (one notification per crossing), cleared when a top-up lifts it above.
-- notify_url and email are where the notification goes.
ALTER TABLE accounts ADD COLUMN low_balance_notified INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN notify_url TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN email TEXT NOT NULL DEFAULT '';
