//go:build unix

package main

import (
	"os/signal"
	"syscall"
)

// ignoreBackgroundRead keeps a kiosk started in the background (`&`) from
// being stopped by the terminal when it waits for Enter: the read fails
// instead, and no new link is printed there.
func ignoreBackgroundRead() { signal.Ignore(syscall.SIGTTIN) }
