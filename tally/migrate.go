package tally

import (
	"context"
	"database/sql"
	"fmt"
)

// schemaVersion is the PRAGMA user_version that schema.sql describes.
const schemaVersion = 2

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
	// 1 → 2: lecturer browser sessions (sessions.go).
	lecturerSessionsTable,
}

// migrate brings the database in tx to schemaVersion. A new database gets
// schema.sql as it is; an older one runs the migrations from its version
// first, then schema.sql adds the tables it lacks.
func migrate(ctx context.Context, tx *sql.Tx) error {
	var version int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return err
	}
	if version > schemaVersion {
		return fmt.Errorf("the database is from a newer kiosk (schema %d; this kiosk knows %d)", version, schemaVersion)
	}
	var tables int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'rounds'`).Scan(&tables); err != nil {
		return err
	}
	if tables > 0 {
		for v := version; v < schemaVersion; v++ {
			if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
				return fmt.Errorf("migrate from version %d: %w", v, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, schemaSQL); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion))
	return err
}
