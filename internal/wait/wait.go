// Package wait is the one test helper for waiting on a condition: tests poll
// what a user could observe instead of sleeping for a guessed time.
package wait

import (
	"testing"
	"time"
)

// Timeout bounds every wait. It is generous because the suite runs on two
// shared cores; a condition that holds returns at once.
const Timeout = 10 * time.Second

// For polls cond every millisecond until it holds, and fails t with what when
// it has not held within Timeout.
func For(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll(t, what, cond, Timeout)
}

func poll(t testing.TB, what string, cond func() bool, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}
