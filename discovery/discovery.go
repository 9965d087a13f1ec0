// Package discovery finds an upstream's backends in DNS (upstreams.NAME.
// discover): A/AAAA records with a configured port, or SRV records, asked
// again every interval. It owns resolving and deciding when the set changed;
// the gateway applies a changed set as a reload would.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Spec is what one upstream resolves.
type Spec struct {
	Name     string        // the DNS name
	Port     int           // the backends' port; 0: SRV records give them
	Resolver string        // "ip:port" of the DNS server; "": the system's
	Interval time.Duration // between lookups
	Max      int           // addresses at most; more is an error
}

// Result classifies one lookup, for shardgate_discovery_lookups_total.
type Result int

const (
	ResultOK    Result = iota // addresses found
	ResultEmpty               // the name has no address (NXDOMAIN or no records): no backends
	ResultError               // the lookup failed: the backends stay as they are
	NumResults
)

var resultNames = [NumResults]string{"ok", "empty", "error"}

func (r Result) String() string { return resultNames[r] }

// lookupTimeout bounds one lookup, SRV targets included.
const lookupTimeout = 5 * time.Second

// Lookup resolves s once. It returns the backend addresses ("ip:port",
// sorted, without repeats) and how the lookup went; addrs is nil unless the
// result is ResultOK.
func Lookup(ctx context.Context, s Spec) (addrs []string, r Result, err error) {
	res := s.resolver()
	if s.Port > 0 {
		ips, err := res.LookupNetIP(ctx, "ip", s.Name)
		if r := classify(err); r != ResultOK {
			return nil, r, s.failure(r, err)
		}
		for _, ip := range ips {
			addrs = append(addrs, netip.AddrPortFrom(ip.Unmap(), uint16(s.Port)).String())
		}
	} else {
		_, srvs, err := res.LookupSRV(ctx, "", "", s.Name)
		if r := classify(err); r != ResultOK {
			return nil, r, s.failure(r, err)
		}
		for _, srv := range srvs {
			if srv.Target == "." || srv.Port == 0 { // "." : the service is not offered here (RFC 2782)
				continue
			}
			ips, err := res.LookupNetIP(ctx, "ip", srv.Target)
			if classify(err) == ResultEmpty {
				continue // a target without address serves nobody
			}
			if err != nil {
				return nil, ResultError, fmt.Errorf("SRV target %s: %w", srv.Target, s.failure(ResultError, err))
			}
			for _, ip := range ips {
				addrs = append(addrs, netip.AddrPortFrom(ip.Unmap(), srv.Port).String())
			}
		}
	}
	slices.Sort(addrs)
	addrs = slices.Compact(addrs)
	switch {
	case len(addrs) == 0:
		return nil, ResultEmpty, nil
	case s.Max > 0 && len(addrs) > s.Max:
		return nil, ResultError, fmt.Errorf("%d addresses, more than %d", len(addrs), s.Max)
	}
	return addrs, ResultOK, nil
}

// failure returns the error of a lookup with result r: none for an answer
// without addresses. Go names the system's server in a DNSError even when
// Dial went to s.Resolver; it is named instead.
func (s Spec) failure(r Result, err error) error {
	if r != ResultError {
		return nil
	}
	var de *net.DNSError
	if s.Resolver != "" && errors.As(err, &de) {
		de.Server = s.Resolver
	}
	return err
}

// classify tells a name without addresses (an answer) from a failure.
func classify(err error) Result {
	var de *net.DNSError
	switch {
	case err == nil:
		return ResultOK
	case errors.As(err, &de) && de.IsNotFound:
		return ResultEmpty
	}
	return ResultError
}

func (s Spec) resolver() *net.Resolver {
	if s.Resolver == "" {
		return net.DefaultResolver
	}
	server := s.Resolver
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
}

// Apply installs a changed set of addresses; the Watcher keeps the set it
// has installed, so a set refused (an error) is offered again after the
// next lookup.
type Apply func(addrs []string) error

// Watcher resolves one Spec every Interval and calls Apply when the set of
// addresses changed. A failed lookup keeps the set; a name without
// addresses empties it. Its methods are safe for concurrent use.
type Watcher struct {
	spec     Spec
	log      *slog.Logger
	apply    Apply
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	mu sync.Mutex // protects st
	st Status
}

// Status is what a Watcher last saw, for the status page and metrics.
type Status struct {
	Addrs      []string // installed by the last Apply that succeeded
	Lookups    [NumResults]uint64
	LastLookup time.Time
	LastError  string // why the last lookup or its Apply failed; "" when it did not
}

// NewWatcher returns a watcher of s that has resolved once (within
// lookupTimeout), so that its first set is known before the gateway applies
// its config; when that lookup fails the set is known, the best knowledge
// of the name there is (a reload's previous watcher of it), or nil. Start
// begins the periodic lookups. Failures are logged to log when they start,
// change and end, not at every lookup.
func NewWatcher(s Spec, known []string, log *slog.Logger) *Watcher {
	w := &Watcher{spec: s, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	w.st.Addrs = known
	w.lookup() // before Start: nothing to apply to yet, the set is recorded
	return w
}

// Spec returns what w resolves.
func (w *Watcher) Spec() Spec { return w.spec }

// Start makes w resolve every Interval and call apply with each changed
// set, until Stop. apply runs on w's goroutine.
func (w *Watcher) Start(apply Apply) {
	w.apply = apply
	go w.run()
}

// Stop ends the lookups and waits for a running apply to return. It may be
// called on a watcher never started, and more than once.
func (w *Watcher) Stop() {
	w.stopOnce.Do(func() { close(w.stop) })
	if w.apply != nil {
		<-w.done
	}
}

// Status returns a copy of w's status.
func (w *Watcher) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.st
	st.Addrs = slices.Clone(st.Addrs)
	return st
}

// Addrs returns the installed set.
func (w *Watcher) Addrs() []string { return w.Status().Addrs }

func (w *Watcher) run() {
	defer close(w.done)
	t := time.NewTimer(w.spec.Interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		w.lookup()
		t.Reset(w.spec.Interval) // the interval runs between lookups: they never pile up
	}
}

// lookup resolves once and installs a changed set.
func (w *Watcher) lookup() {
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	addrs, r, err := Lookup(ctx, w.spec)
	msg := ""
	if r == ResultError {
		msg = err.Error()
	}
	w.mu.Lock()
	w.st.Lookups[r]++
	w.st.LastLookup = time.Now()
	changed := r != ResultError && !slices.Equal(addrs, w.st.Addrs)
	w.mu.Unlock()
	if changed {
		if err := w.install(addrs); err != nil {
			msg = "applying " + strconv.Itoa(len(addrs)) + " backends: " + err.Error()
		}
	}
	w.setError(msg)
}

// setError records the outcome of a lookup, logging a failure when it starts
// or changes and the recovery when it ends.
func (w *Watcher) setError(msg string) {
	w.mu.Lock()
	last := w.st.LastError
	w.st.LastError = msg
	w.mu.Unlock()
	switch {
	case w.log == nil || msg == last:
	case msg == "":
		w.log.Info("DNS discovery recovered", "dns", w.spec.Name)
	default:
		w.log.Warn("DNS discovery failed; the backends stay as they are", "dns", w.spec.Name, "error", msg)
	}
}

// install applies addrs (before Start, in NewWatcher, there is nothing to
// apply them to), recording them once applied.
func (w *Watcher) install(addrs []string) error {
	if w.apply != nil {
		if err := w.apply(addrs); err != nil {
			return err
		}
	}
	w.mu.Lock()
	w.st.Addrs = addrs
	w.mu.Unlock()
	return nil
}
