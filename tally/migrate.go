package tally

import (
	"context"
	"database/sql"
	"fmt"
)

// schemaVersion is the PRAGMA user_version that schema.sql describes.
const schemaVersion = 4

// migrations[v] brings a database at user_version v to v+1. A lecturer may
// already have a database file from an earlier version of the kiosk, with
// rounds in it; CREATE TABLE IF NOT EXISTS would leave its old tables as
// they are.
var migrations = []string{
	// 0 → 1: the record (R8), modes, series and paper slips. Old notices
	// were plain text; they become JSON strings, the canonical form of a
	// notice given as text. Their hashes stay as they were computed then.
	`ALTER TABLE rounds ADD COLUMN mode TEXT NOT NULL DEFAULT 'room';
	ALTER TABLE rounds ADD COLUMN lang TEXT NOT NULL DEFAULT '';
	ALTER TABLE rounds ADD COLUMN series TEXT NOT NULL DEFAULT '';
	ALTER TABLE rounds ADD COLUMN received INTEGER;
	ALTER TABLE rounds ADD COLUMN outcome TEXT;
	ALTER TABLE rounds ADD COLUMN paper INTEGER NOT NULL DEFAULT 0;
	UPDATE rounds SET notice = json_quote(notice);`,
	// 1 → 2: no choice on disk. The slips and the paper split go; the
	// phones that held a slip stay, and send it again; the paper total is
	// kept in rounds. The kiosk key goes too: earlier kiosks derived the
	// seal's key from it, so a frame captured then would open with it.
	`CREATE TABLE IF NOT EXISTS slips (device BLOB PRIMARY KEY, choice INTEGER) WITHOUT ROWID;
	CREATE TABLE IF NOT EXISTS paper (round INTEGER PRIMARY KEY, consents INTEGER NOT NULL, refusals INTEGER NOT NULL);
	DELETE FROM phones WHERE device NOT IN (SELECT device FROM slips);
	UPDATE rounds SET paper = (SELECT consents + refusals FROM paper WHERE paper.round = rounds.id)
		WHERE id IN (SELECT round FROM paper);
	DROP TABLE slips;
	DROP TABLE paper;
	DELETE FROM meta WHERE key = 'kiosk_key';`,
	// 2 → 3: lecturer browser sessions (sessions.go).
	lecturerSessionsTable,
	// 3 → 4: the column that holds the language tag of a round's notice
	// template is named for what it holds.
	`ALTER TABLE rounds RENAME COLUMN lang TO template;`,
}

// migrate brings the database in tx to schemaVersion. A new database gets
// schema.sql as it is; an older one runs the migrations from its version
// first, then schema.sql adds the tables it lacks. It reports whether an
// older database was migrated: its deleted rows must then be checkpointed
// out of the WAL.
func migrate(ctx context.Context, tx *sql.Tx) (bool, error) {
	var version int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return false, err
	}
	if version > schemaVersion {
		return false, fmt.Errorf("the database is from a newer kiosk (schema %d; this kiosk knows %d)", version, schemaVersion)
	}
	var tables int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'rounds'`).Scan(&tables); err != nil {
		return false, err
	}
	migrated := tables > 0 && version < schemaVersion
	if tables > 0 {
		for v := version; v < schemaVersion; v++ {
			if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
				return false, fmt.Errorf("migrate from version %d: %w", v, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, schemaSQL); err != nil {
		return false, err
	}
	_, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion))
	return migrated, err
}
