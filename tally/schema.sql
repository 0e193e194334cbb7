-- The kiosk's whole database, at the version in PRAGMA user_version (see
-- migrate.go). Per-device rows (phones) live only while a session is open;
-- closing a session deletes them (R9). Series memory (series_phones) lives
-- until the series ends or the retention passes. No table holds a name, an
-- address, a user agent, a device secret, any phone's choice, or how many
-- consented versus refused (R6): choices live in the kiosk's memory only,
-- and a phone sends its slip again after a restart.

-- meta holds the kiosk's own secrets and counters:
--   kiosk_key   32 random bytes; the join tokens' key is derived from it.
--               Nothing derived from it opens a sealed frame: the seal's
--               keys live in memory only, new at each start.
--   device_key  32 random bytes, renewed when a session closes, so that the
--               keyed hashes of one session cannot be linked to the next
--   boot        how many times the store has been opened (versions are unique
--               across restarts)
--   closed      '1' while the session is closed
--   checked_at  when storage was last found working again after a fault
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value BLOB NOT NULL
) WITHOUT ROWID;

-- rounds: one row per purpose and notice a room was asked about (R3), and
-- the aggregate record of it (R8). notice is canonical JSON (a string, or an
-- object with sorted keys); notice_hash is NoticeHash. received and outcome
-- are written when the round ends; paper is the total of paper slips, kept
-- current while the round is open, never their split (the split lives in
-- memory only). Rows older than the retention are deleted (R9).
CREATE TABLE IF NOT EXISTS rounds (
	id          INTEGER PRIMARY KEY,
	purpose     TEXT NOT NULL,
	notice      TEXT NOT NULL,
	notice_hash TEXT NOT NULL,
	headcount   INTEGER NOT NULL DEFAULT 0,
	opened_at   TEXT NOT NULL,
	closed_at   TEXT,
	mode        TEXT NOT NULL DEFAULT 'room',
	template    TEXT NOT NULL DEFAULT '',
	series      TEXT NOT NULL DEFAULT '',
	received    INTEGER,
	outcome     TEXT,
	paper       INTEGER NOT NULL DEFAULT 0
);

-- intervals: each stretch of time in which a round was unlocked (R8).
-- ended_by says why it ended: slip-changed (a slip was changed, withdrawn or
-- its phone left: deliberately one reason, so the record never tells a
-- refusal from a withdrawal), headcount-change, paper-change, new-round,
-- closed, fault, stopped (the kiosk was shut down) or interrupted (the kiosk
-- stopped without a shutdown; ended_at is then unknown and NULL).
CREATE TABLE IF NOT EXISTS intervals (
	id         INTEGER PRIMARY KEY,
	round      INTEGER NOT NULL,
	started_at TEXT NOT NULL,
	ended_at   TEXT,
	ended_by   TEXT
);

-- headcounts: every headcount the lecturer set in a round, and when (R8).
-- Together with the count of slips on the projector, these times are what a
-- lecturer could always see; the record shows them rather than hide them.
CREATE TABLE IF NOT EXISTS headcounts (
	round     INTEGER NOT NULL,
	at        TEXT NOT NULL,
	headcount INTEGER NOT NULL
);

-- series: sessions with the same purpose and notice, e.g. a course (R5).
-- key is the series' own random key: phones are remembered only as
-- HMAC(key, device secret), and deleting the row makes leftover hashes
-- meaningless. Days are YYYY-MM-DD: nothing finer is kept.
CREATE TABLE IF NOT EXISTS series (
	name        TEXT PRIMARY KEY,
	notice_hash TEXT NOT NULL,
	key         BLOB NOT NULL,
	started_on  TEXT NOT NULL,
	last_on     TEXT NOT NULL
) WITHOUT ROWID;

-- series_phones: phones that consented in a round of the series that ended
-- with everyone's consent, and the day of that round. Only such rounds are
-- remembered, so the number of rows never says how many refused.
CREATE TABLE IF NOT EXISTS series_phones (
	series TEXT NOT NULL,
	device BLOB NOT NULL,
	day    TEXT NOT NULL,
	PRIMARY KEY (series, device)
) WITHOUT ROWID;

-- phones: keyed hashes of the phones that hold a slip in the current round,
-- whatever it says. This is all a restart needs: which phones must send
-- their slip again. WITHOUT ROWID keeps rows in hash order, so the file does
-- not record who came first.
CREATE TABLE IF NOT EXISTS phones (
	device BLOB PRIMARY KEY
) WITHOUT ROWID;

-- lecturer_sessions: signed-in lecturer browsers (sessions.go): the SHA-256
-- of each one's random cookie, and when it stops working. Closing the
-- session deletes every row.
CREATE TABLE IF NOT EXISTS lecturer_sessions (
	hash       BLOB PRIMARY KEY,
	expires_at TEXT NOT NULL
) WITHOUT ROWID;
