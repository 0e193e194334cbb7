-- The kiosk's whole database. Per-device rows (phones, slips) live only while
-- a session is open; closing a session deletes them (R9). No table holds a
-- name, an address, a user agent or a device secret (R6).

-- meta holds the kiosk's own secrets and counters:
--   kiosk_key   32 random bytes; other keys are derived from it
--   device_key  32 random bytes, renewed when a session closes, so that the
--               keyed hashes of one session cannot be linked to the next
--   boot        how many times the store has been opened (versions are unique
--               across restarts)
--   closed      '1' while the session is closed
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value BLOB NOT NULL
) WITHOUT ROWID;

-- rounds: one row per purpose and notice a room was asked about (R3).
CREATE TABLE IF NOT EXISTS rounds (
	id          INTEGER PRIMARY KEY,
	purpose     TEXT NOT NULL,
	notice      TEXT NOT NULL,
	notice_hash TEXT NOT NULL,
	headcount   INTEGER NOT NULL DEFAULT 0,
	opened_at   TEXT NOT NULL,
	closed_at   TEXT
);

-- phones: keyed hashes of the phones that joined the open session. WITHOUT
-- ROWID keeps rows in hash order, so the file does not record who came first.
CREATE TABLE IF NOT EXISTS phones (
	device BLOB PRIMARY KEY
) WITHOUT ROWID;

-- slips: each joined phone's current choice in the current round
-- (1 consent, 2 refuse). No timestamps: the order of slips is not kept.
CREATE TABLE IF NOT EXISTS slips (
	device BLOB PRIMARY KEY,
	choice INTEGER NOT NULL CHECK (choice IN (1, 2))
) WITHOUT ROWID;
