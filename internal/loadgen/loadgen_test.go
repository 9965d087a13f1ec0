package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// server is an in-process HTTP server that counts connections and the
// highest number of requests in progress at once.
type server struct {
	*httptest.Server
	conns, inflight, maxInflight, served atomic.Int64
}

// newServer starts a server on 127.0.0.1:0 answering with h; it is closed
// when the test ends.
func newServer(t *testing.T, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.inflight.Add(1)
		for m := s.maxInflight.Load(); n > m && !s.maxInflight.CompareAndSwap(m, n); m = s.maxInflight.Load() {
		}
		defer s.inflight.Add(-1)
		h(w, r)
		s.served.Add(1)
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// sleepy answers 200 after d (unless the client leaves first), or 503 with Retry-After when the query has shed=1.
func sleepy(d time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("shed") == "1" {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		work := time.NewTimer(d)
		defer work.Stop()
		select {
		case <-work.C:
			io.WriteString(w, "done\n")
		case <-r.Context().Done(): // the client left
		}
	}
}

func TestOpenLoopCountsAndConnections(t *testing.T) {
	tests := []struct {
		name     string
		rate     float64
		duration time.Duration
		max      int
		want     int
	}{
		{name: "bounded by duration", rate: 200, duration: 250 * time.Millisecond, want: 50},
		{name: "bounded by count", rate: 1000, duration: 10 * time.Second, max: 7, want: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, sleepy(time.Millisecond))
			o := OpenLoop{URL: s.URL + "/x", Rate: tt.rate, Duration: tt.duration, MaxRequests: tt.max}
			rs, err := o.Run(context.Background())
			if err != nil {
				t.Fatalf("Run() error = %v", err)
			}
			if len(rs) != tt.want {
				t.Fatalf("len(Run()) = %d, want %d", len(rs), tt.want)
			}
			for i, r := range rs {
				if r.Kind != KindNone || r.Status != 200 {
					t.Fatalf("result %d = %v/%d (%v), want ok/200", i, r.Kind, r.Status, r.Err)
				}
				wantGap := time.Duration(float64(i) * float64(time.Second) / tt.rate)
				if gap := r.Start.Sub(rs[0].Start); gap != wantGap {
					t.Fatalf("result %d arrived at +%v, want +%v", i, gap, wantGap)
				}
			}
			if got := s.conns.Load(); got != int64(tt.want) {
				t.Errorf("server saw %d connections, want %d (one per request)", got, tt.want)
			}
		})
	}
}

// TestOpenLoopDoesNotWaitForAnswers pins what makes the loop open: slow
// answers do not slow down arrivals.
func TestOpenLoopDoesNotWaitForAnswers(t *testing.T) {
	s := newServer(t, sleepy(200*time.Millisecond))
	o := OpenLoop{URL: s.URL + "/", Rate: 100, Duration: 300 * time.Millisecond}
	rs, err := o.Run(context.Background())
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	if sum := Summarize(rs); sum.Status[200] != 30 {
		t.Fatalf("Run() = %v, want 30 answered 200", sum)
	}
	if got := s.maxInflight.Load(); got < 10 {
		t.Errorf("server's max in progress = %d, want >= 10 (arrivals every 10ms, answers take 200ms)", got)
	}
}

func TestOpenLoopOutcomes(t *testing.T) {
	hangup := func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		}
	}
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		query      string
		wantKind   Kind
		wantStatus int
		wantRetry  string
		minLatency time.Duration
		maxLatency time.Duration
	}{
		{name: "ok", handler: sleepy(0), wantKind: KindNone, wantStatus: 200, maxLatency: time.Second},
		{name: "503 with Retry-After", handler: sleepy(0), query: "?shed=1", wantKind: KindNone,
			wantStatus: 503, wantRetry: "2", maxLatency: time.Second},
		{name: "impatient client", handler: sleepy(time.Second), wantKind: KindTimeout,
			minLatency: 150 * time.Millisecond, maxLatency: 900 * time.Millisecond},
		{name: "server resets", handler: hangup, wantKind: KindReset, maxLatency: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.handler)
			o := OpenLoop{URL: s.URL + "/" + tt.query, Rate: 10, Duration: 100 * time.Millisecond,
				Timeout: 150 * time.Millisecond}
			rs, err := o.Run(context.Background())
			if err != nil || len(rs) != 1 {
				t.Fatalf("Run() = %d results, %v; want 1, nil", len(rs), err)
			}
			r := rs[0]
			if r.Kind != tt.wantKind || r.Status != tt.wantStatus || r.RetryAfter != tt.wantRetry {
				t.Errorf("Run() = %v/%d Retry-After %q (err %v), want %v/%d Retry-After %q",
					r.Kind, r.Status, r.RetryAfter, r.Err, tt.wantKind, tt.wantStatus, tt.wantRetry)
			}
			if r.Latency < tt.minLatency || r.Latency > tt.maxLatency {
				t.Errorf("Latency = %v, want in [%v, %v]", r.Latency, tt.minLatency, tt.maxLatency)
			}
		})
	}
}

func TestOpenLoopRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	o := OpenLoop{URL: "http://" + addr + "/", Rate: 10, Duration: 100 * time.Millisecond}
	rs, err := o.Run(context.Background())
	if err != nil || len(rs) != 1 {
		t.Fatalf("Run() = %d results, %v; want 1, nil", len(rs), err)
	}
	if rs[0].Kind != KindRefused {
		t.Errorf("Kind = %v (err %v), want refused", rs[0].Kind, rs[0].Err)
	}
}

func TestOpenLoopStopsWithContext(t *testing.T) {
	s := newServer(t, sleepy(0))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	o := OpenLoop{URL: s.URL + "/", Rate: 100, Duration: time.Minute}
	start := time.Now()
	rs, err := o.Run(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run() error = %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Run() took %v after its context ended at 100ms", took)
	}
	if len(rs) == 0 || len(rs) > 20 {
		t.Errorf("len(Run()) = %d, want 1..20 for 100ms at 100/s", len(rs))
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		run  func() ([]Result, error)
	}{
		{"open: no rate", (&OpenLoop{URL: "http://127.0.0.1:1/", Duration: time.Second}).runner()},
		{"open: no duration", (&OpenLoop{URL: "http://127.0.0.1:1/", Rate: 1}).runner()},
		{"open: https", (&OpenLoop{URL: "https://127.0.0.1:1/", Rate: 1, Duration: time.Second}).runner()},
		{"closed: no clients", (&ClosedLoop{URL: "http://127.0.0.1:1/", MaxRequests: 1}).runner()},
		{"closed: unbounded", (&ClosedLoop{URL: "http://127.0.0.1:1/", Clients: 1}).runner()},
		{"closed: bad url", (&ClosedLoop{URL: "127.0.0.1:1", Clients: 1, MaxRequests: 1}).runner()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if rs, err := tt.run(); err == nil {
				t.Errorf("Run() = %d results, nil error; want an error", len(rs))
			}
		})
	}
}

func (o *OpenLoop) runner() func() ([]Result, error) {
	return func() ([]Result, error) { return o.Run(context.Background()) }
}

func (c *ClosedLoop) runner() func() ([]Result, error) {
	return func() ([]Result, error) { return c.Run(context.Background()) }
}

func TestClosedLoopBoundedByCount(t *testing.T) {
	s := newServer(t, sleepy(2*time.Millisecond))
	c := ClosedLoop{URL: s.URL + "/", Clients: 4, MaxRequests: 40, Duration: time.Minute}
	rs, err := c.Run(context.Background())
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	if sum := Summarize(rs); sum.Total != 40 || sum.Status[200] != 40 {
		t.Fatalf("Run() = %v, want 40 answered 200", sum)
	}
	if got := s.served.Load(); got != 40 {
		t.Errorf("server served %d, want 40", got)
	}
	if got := s.maxInflight.Load(); got > 4 {
		t.Errorf("server's max in progress = %d, want <= 4 clients", got)
	}
	if got := s.conns.Load(); got > 4 {
		t.Errorf("server saw %d connections, want <= 4 (keep-alive)", got)
	}
}

func TestClosedLoopBoundedByDuration(t *testing.T) {
	s := newServer(t, sleepy(10*time.Millisecond))
	c := ClosedLoop{URL: s.URL + "/?shed=1", Clients: 2, Duration: 200 * time.Millisecond}
	start := time.Now()
	rs, err := c.Run(context.Background())
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Run() took %v, want about 200ms", took)
	}
	if len(rs) == 0 {
		t.Fatal("Run() returned no results")
	}
	for _, r := range rs {
		if r.Status != 503 || r.RetryAfter != "2" {
			t.Fatalf("result = %d Retry-After %q (err %v), want 503 Retry-After \"2\"", r.Status, r.RetryAfter, r.Err)
		}
	}
}

func TestClosedLoopTimeout(t *testing.T) {
	s := newServer(t, sleepy(time.Second))
	c := ClosedLoop{URL: s.URL + "/", Clients: 2, MaxRequests: 2, Timeout: 100 * time.Millisecond}
	rs, err := c.Run(context.Background())
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	for _, r := range rs {
		if r.Kind != KindTimeout {
			t.Errorf("Kind = %v (err %v), want timeout", r.Kind, r.Err)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want Kind
	}{
		{nil, KindNone},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), KindRefused},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), KindReset},
		{fmt.Errorf("write: %w", syscall.EPIPE), KindReset},
		{io.ErrUnexpectedEOF, KindReset},
		{fmt.Errorf("read: %w", io.EOF), KindReset},
		{fmt.Errorf("read: %w", os.ErrDeadlineExceeded), KindTimeout},
		{context.DeadlineExceeded, KindTimeout},
		{errors.New("something else"), KindOther},
	}
	for _, tt := range tests {
		if got := Classify(tt.err); got != tt.want {
			t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := time.Millisecond
	rs := []Result{
		{Start: t0, Latency: 10 * ms, Status: 200},
		{Start: t0.Add(5 * ms), Latency: 30 * ms, Status: 200},
		{Start: t0.Add(6 * ms), Latency: 1 * ms, Status: 503, RetryAfter: "1"},
		{Start: t0.Add(7 * ms), Latency: 100 * ms, Kind: KindTimeout},
		{Start: t0.Add(8 * ms), Latency: 20 * ms, Status: 200},
	}
	s := Summarize(rs)
	want := "n=5 200=3 503=1 timeout=1 p50=20ms p99=30ms span=107ms"
	if got := s.String(); got != want {
		t.Errorf("Summarize().String() = %q, want %q", got, want)
	}
	if got := Summarize(nil).String(); !strings.HasPrefix(got, "n=0 p50=0s") {
		t.Errorf("Summarize(nil).String() = %q, want n=0 p50=0s...", got)
	}
}

func TestPercentile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	tests := []struct {
		p    float64
		want time.Duration
	}{{0, 1}, {10, 1}, {50, 5}, {90, 9}, {99, 10}, {100, 10}}
	for _, tt := range tests {
		if got := Percentile(ds, tt.p); got != tt.want {
			t.Errorf("Percentile(1..10, %v) = %v, want %v", tt.p, got, tt.want)
		}
	}
	if ds[0] != 5 {
		t.Errorf("Percentile modified its input: ds[0] = %v, want 5", ds[0])
	}
}
