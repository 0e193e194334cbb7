//go:build !unix

package kiosk

// RaiseFileLimit reports no limit where the system has no per-process
// limit on open files that a program can raise (Windows).
func RaiseFileLimit(want uint64) (uint64, error) { return want, nil }
