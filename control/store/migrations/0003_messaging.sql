-- Messaging (issue 8): what a message's life adds to its row, and the
-- opt-out list.

-- reason: the status's translated reason ("Delivered Successfully");
-- raw_status: the carrier's own report text, as it came; carrier_id: the
-- Message-ID the SBC gave the message towards the carrier, which its
-- delivery reports name; date_sent: when the carrier took it.
ALTER TABLE messages ADD COLUMN reason TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN raw_status TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN error_code INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN num_segments INTEGER NOT NULL DEFAULT 1;
ALTER TABLE messages ADD COLUMN price BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN status_callback TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN carrier_id TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN date_sent BIGINT NOT NULL DEFAULT 0;
-- The outbound queue is the rows still queued, oldest first, per account.
CREATE INDEX messages_status ON messages (status, date_created);
CREATE INDEX messages_carrier_id ON messages (carrier_id);

-- Whether the SBC handles STOP/START keywords written to a number (on by
-- default; off for customers who run their own opt-out handling).
ALTER TABLE numbers ADD COLUMN sms_stop INTEGER NOT NULL DEFAULT 1;

-- A recipient (+E.164) who wrote STOP to any of an account's numbers gets
-- no more messages from the whole account until it writes START.
CREATE TABLE opt_outs (
	account_sid  TEXT NOT NULL,
	number       TEXT NOT NULL,
	date_created BIGINT NOT NULL,
	PRIMARY KEY (account_sid, number)
);
