-- Webhooks (issue 8): what signing them and calls' status callbacks need.

-- token_sealed: the account's auth token, sealed (AES-256-GCM) with the
-- node's token key (control.token_key_file): webhooks are signed with the
-- token itself (X-Twilio-Signature), which token_hash cannot give back.
-- Empty for tokens made before this migration: rotate them to sign.
ALTER TABLE accounts ADD COLUMN token_sealed TEXT NOT NULL DEFAULT '';

-- A number's status callback: where the end of each call to or from it
-- is posted.
ALTER TABLE numbers ADD COLUMN status_callback TEXT NOT NULL DEFAULT '';
