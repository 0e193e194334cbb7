package tally

import "database/sql"

// DB is the store's database, for tests in this package that read it.
// Writing through it bypasses the store's state.
func (s *Store) DB() *sql.DB { return s.db }
