package upstream

import (
	"testing"
	"testing/synctest"
)

// The cluster share caps a backend's limit exactly like a lowered limit
// (rule 1): share 0 admits nothing and queues; a share below in-flight
// admits nothing new and passes no released slot on; a raised share hands
// its new slots to waiters at once; -1 lifts the cap.
func TestShareCapsLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := bubblePool(t, 0, 10, 0, 4)
		b := p.Backends()[0]
		b.SetShare(0)
		if !b.full(0) || b.Available() {
			t.Fatal("share 0: the backend has a free slot")
		}
		out := make(chan grant, 8)
		queueUp(t, p, 0, 3, out)
		if !b.Waiting() {
			t.Fatal("Waiting() = false with 3 queued")
		}
		b.SetShare(2) // two slots go to the two oldest waiters at once
		synctest.Wait()
		for range 2 {
			if g := <-out; g.err != nil || g.b != b {
				t.Fatalf("waiter got %+v, want the backend", g)
			}
		}
		if b.Inflight() != 2 || p.QueueLength() != 1 {
			t.Fatalf("inflight %d, queued %d after share 2; want 2, 1", b.Inflight(), p.QueueLength())
		}
		b.SetShare(1) // below in-flight: a release passes nothing on
		p.Release(b)
		synctest.Wait()
		if b.Inflight() != 1 || p.QueueLength() != 1 {
			t.Fatalf("inflight %d, queued %d after a release at share 1 (of 2 held); want 1, 1", b.Inflight(), p.QueueLength())
		}
		p.Release(b) // at the share: the waiter gets it
		synctest.Wait()
		if g := <-out; g.err != nil || b.Inflight() != 1 {
			t.Fatalf("waiter got %+v, inflight %d; want the slot, 1", g, b.Inflight())
		}
		b.SetShare(-1) // no cap: the configured limit of 4
		for range 3 {
			if _, _, err := p.Acquire(nil); err != nil {
				t.Fatalf("Acquire without a share: %v", err)
			}
		}
		if !b.full(b.Inflight()) || b.Inflight() != 4 {
			t.Fatalf("inflight %d without a share, want the limit 4", b.Inflight())
		}
	})
}
