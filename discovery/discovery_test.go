package discovery

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"shardgate/internal/dnstest"
	"shardgate/internal/wait"
)

func lookup(t *testing.T, s Spec) ([]string, Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return Lookup(ctx, s)
}

func TestLookupAddressRecords(t *testing.T) {
	dns := dnstest.Start(t)
	dns.SetAddrs("app.test", "127.0.0.3", "127.0.0.2", "::1", "127.0.0.2")
	addrs, r, err := lookup(t, Spec{Name: "app.test.", Port: 8000, Resolver: dns.Addr})
	want := []string{"127.0.0.2:8000", "127.0.0.3:8000", "[::1]:8000"}
	if err != nil || r != ResultOK || !slices.Equal(addrs, want) {
		t.Fatalf("Lookup() = %q, %v, %v; want %q, ok, nil (A and AAAA, sorted, once each)", addrs, r, err, want)
	}
}

func TestLookupSRVRecords(t *testing.T) {
	dns := dnstest.Start(t)
	dns.SetSRV("_http._tcp.app.test",
		dnstest.SRV{Target: "b2.test", Port: 8002},
		dnstest.SRV{Target: "b1.test", Port: 8001},
		dnstest.SRV{Target: "gone.test", Port: 8003}, // no address: skipped
		dnstest.SRV{Target: "b1.test", Port: 8001})
	dns.SetAddrs("b1.test", "127.0.0.1")
	dns.SetAddrs("b2.test", "127.0.0.2", "127.0.0.1")
	addrs, r, err := lookup(t, Spec{Name: "_http._tcp.app.test.", Resolver: dns.Addr})
	want := []string{"127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.2:8002"}
	if err != nil || r != ResultOK || !slices.Equal(addrs, want) {
		t.Fatalf("Lookup() = %q, %v, %v; want %q, ok, nil", addrs, r, err, want)
	}
}

func TestLookupResults(t *testing.T) {
	dns := dnstest.Start(t)
	dns.SetAddrs("nodata.test") // the name exists, without addresses
	dns.SetFailing("broken.test", true)
	dns.SetAddrs("many.test", "127.0.0.1", "127.0.0.2", "127.0.0.3")
	dns.SetSRV("_x._tcp.broken-target.test", dnstest.SRV{Target: "broken.test", Port: 80})
	tests := []struct {
		name string
		spec Spec
		want Result
	}{
		{"NXDOMAIN", Spec{Name: "missing.test.", Port: 80}, ResultEmpty},
		{"no records", Spec{Name: "nodata.test.", Port: 80}, ResultEmpty},
		{"no SRV records", Spec{Name: "missing.test."}, ResultEmpty},
		{"SERVFAIL", Spec{Name: "broken.test.", Port: 80}, ResultError},
		{"SRV target SERVFAIL", Spec{Name: "_x._tcp.broken-target.test."}, ResultError},
		{"more than Max", Spec{Name: "many.test.", Port: 80, Max: 2}, ResultError},
		{"Max reached", Spec{Name: "many.test.", Port: 80, Max: 3}, ResultOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Resolver = dns.Addr
			addrs, r, err := lookup(t, tt.spec)
			if r != tt.want || (r == ResultError) != (err != nil) || (r != ResultOK) != (addrs == nil) {
				t.Errorf("Lookup() = %q, %v, %v; want result %v", addrs, r, err, tt.want)
			}
		})
	}
}

func TestLookupDeadResolver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	// Port 9 of loopback: nothing answers, so the lookup runs into ctx.
	_, r, err := Lookup(ctx, Spec{Name: "app.test.", Port: 80, Resolver: "127.0.0.1:9"})
	if r != ResultError || err == nil {
		t.Fatalf("Lookup() against a dead resolver = %v, %v; want error", r, err)
	}
}

// applied records what a Watcher applies.
type applied struct {
	mu   sync.Mutex
	sets [][]string
	fail bool // refuse the next sets
}

func (a *applied) apply(addrs []string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sets = append(a.sets, addrs)
	if a.fail {
		return errors.New("refused")
	}
	return nil
}

func (a *applied) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.sets)
}

func (a *applied) last() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sets[len(a.sets)-1]
}

func TestWatcherFollowsTheRecords(t *testing.T) {
	dns := dnstest.Start(t)
	dns.SetAddrs("app.test", "127.0.0.1", "127.0.0.2")
	w := NewWatcher(Spec{Name: "app.test.", Port: 80, Resolver: dns.Addr, Interval: 5 * time.Millisecond}, nil, nil)
	if got := w.Addrs(); !slices.Equal(got, []string{"127.0.0.1:80", "127.0.0.2:80"}) {
		t.Fatalf("Addrs() after NewWatcher = %q, want both addresses", got)
	}
	var a applied
	w.Start(a.apply)
	t.Cleanup(w.Stop)

	dns.SetAddrs("app.test", "127.0.0.1", "127.0.0.2", "127.0.0.3")
	three := []string{"127.0.0.1:80", "127.0.0.2:80", "127.0.0.3:80"}
	wait.For(t, "the third address applied", func() bool { return slices.Equal(w.Addrs(), three) })
	if a.count() != 1 || !slices.Equal(a.last(), three) {
		t.Fatalf("applied %q, want one set of three", a.sets)
	}

	// A failing server keeps the set and says why; the recovery clears it.
	dns.SetFailing("app.test", true)
	errorsBefore := w.Status().Lookups[ResultError]
	wait.For(t, "failed lookups", func() bool { return w.Status().Lookups[ResultError] >= errorsBefore+3 })
	if st := w.Status(); st.LastError == "" || !slices.Equal(st.Addrs, three) || a.count() != 1 {
		t.Fatalf("while SERVFAIL: status %+v, %d sets applied; want an error, the three addresses, nothing applied", st, a.count())
	}
	dns.SetFailing("app.test", false)
	wait.For(t, "the error cleared", func() bool { return w.Status().LastError == "" })
	if a.count() != 1 {
		t.Fatalf("recovery with the same records applied %q, want nothing new", a.sets)
	}

	// NXDOMAIN: no backends.
	dns.Remove("app.test")
	wait.For(t, "the empty set applied", func() bool { return len(w.Addrs()) == 0 })
	if a.count() != 2 || a.last() != nil {
		t.Fatalf("applied %q, want the empty set second", a.sets)
	}
}

func TestWatcherOffersARefusedSetAgain(t *testing.T) {
	dns := dnstest.Start(t)
	dns.SetAddrs("app.test", "127.0.0.1")
	w := NewWatcher(Spec{Name: "app.test.", Port: 80, Resolver: dns.Addr, Interval: 5 * time.Millisecond}, nil, nil)
	a := applied{fail: true}
	w.Start(a.apply)
	t.Cleanup(w.Stop)
	dns.SetAddrs("app.test", "127.0.0.2")
	wait.For(t, "the refused set offered twice", func() bool { return a.count() >= 2 })
	if st := w.Status(); !slices.Equal(st.Addrs, []string{"127.0.0.1:80"}) || st.LastError == "" {
		t.Fatalf("after refusals: status %+v; want the old address and an error", st)
	}
	a.mu.Lock()
	a.fail = false
	a.mu.Unlock()
	wait.For(t, "the set installed", func() bool { return slices.Equal(w.Addrs(), []string{"127.0.0.2:80"}) })
	if st := w.Status(); st.LastError != "" {
		t.Fatalf("LastError = %q after the set was applied, want none", st.LastError)
	}
}

func TestWatcherStop(t *testing.T) {
	dns := dnstest.Start(t)
	dns.SetAddrs("app.test", "127.0.0.1")
	w := NewWatcher(Spec{Name: "app.test.", Port: 80, Resolver: dns.Addr, Interval: time.Millisecond}, nil, nil)
	w.Stop() // never started
	w = NewWatcher(w.Spec(), nil, nil)
	var a applied
	w.Start(a.apply)
	w.Stop()
	w.Stop()
	before := dns.Queries()
	dns.SetAddrs("app.test", "127.0.0.2")
	time.Sleep(20 * time.Millisecond) // twenty intervals: a running watcher would ask
	if n := dns.Queries(); n != before || a.count() != 0 {
		t.Fatalf("after Stop: %d queries, %d sets applied; want none", n-before, a.count())
	}
}

func TestWatcherStartsFromWhatIsKnownWhenDNSFails(t *testing.T) {
	dns := dnstest.Start(t)
	dns.SetFailing("app.test", true)
	known := []string{"127.0.0.1:80"}
	w := NewWatcher(Spec{Name: "app.test.", Port: 80, Resolver: dns.Addr, Interval: time.Hour}, known, nil)
	if st := w.Status(); !slices.Equal(st.Addrs, known) || st.LastError == "" {
		t.Fatalf("status after a failed first lookup = %+v, want the known set and the error", st)
	}
	dns.SetFailing("app.test", false)
	dns.Remove("app.test")
	w = NewWatcher(w.Spec(), known, nil)
	if st := w.Status(); len(st.Addrs) != 0 || st.LastError != "" {
		t.Fatalf("status after an empty first answer = %+v, want no address: DNS answered", st)
	}
}
