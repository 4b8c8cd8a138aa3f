-- Registered devices' bindings (issue 7): the registrar's memory, kept so
-- that a restarted node still reaches its devices. A binding belongs to
-- the node whose flow (connection, NAT binding) the device registered
-- over; rows past expires are dead and swept.
CREATE TABLE registrations (
	username     TEXT NOT NULL,
	contact      TEXT NOT NULL,
	account_sid  TEXT NOT NULL,
	node         TEXT NOT NULL,
	transport    TEXT NOT NULL,
	source       TEXT NOT NULL,
	expires      BIGINT NOT NULL,
	user_agent   TEXT NOT NULL,
	call_id      TEXT NOT NULL,
	cseq         BIGINT NOT NULL,
	date_updated BIGINT NOT NULL,
	PRIMARY KEY (username, contact)
);
CREATE INDEX registrations_account ON registrations (account_sid);
CREATE INDEX registrations_node ON registrations (node);
