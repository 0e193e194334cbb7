//go:build !linux

package main

import (
	"errors"
	"syscall"
)

// The harness measures through /proc, which only Linux has. Elsewhere it
// still builds (so go vet ./... passes on a Mac) and runs, but reports
// memory and file descriptors as unknown and leaves the file limit alone.

var errNoProc = errors.New("no /proc on this system")

func childAttr() *syscall.SysProcAttr { return nil }

func raiseFileLimit(need uint64) (uint64, error) { return 0, nil }

func memStatus(pid int) (rss, hwm int64, err error) { return 0, 0, errNoProc }

func countFDs(pid int) int { return -1 }

func loadAvg() string { return "" }

func memTotal() string { return "" }
