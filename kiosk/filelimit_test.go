package kiosk

import "testing"

func TestRaiseFileLimitNeverLowers(t *testing.T) {
	before, err := RaiseFileLimit(0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := RaiseFileLimit(before + 64)
	if got < before {
		t.Errorf("RaiseFileLimit(%d) = %d, %v; lowered from %d", before+64, got, err, before)
	}
}
