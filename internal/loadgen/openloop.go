package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// OpenLoop sends GET requests at a constant arrival rate, each on a new TCP
// connection, without waiting for earlier ones to be answered. Each client
// is impatient: it closes its connection once Timeout has passed since its
// scheduled arrival. Configure the fields, then call Run; an OpenLoop must
// not be changed while Run is in progress, and Run may be called again.
type OpenLoop struct {
	// URL is the target, "http://host:port/path?query".
	URL string
	// Rate is the number of arrivals per second; it must be > 0.
	Rate float64
	// Duration bounds the arrivals: the last one is due before Duration has
	// passed since the first. Run returns when every request has ended.
	Duration time.Duration
	// MaxRequests bounds the number of requests; 0 means no bound besides
	// Duration.
	MaxRequests int
	// Timeout is each client's patience, counted from its scheduled arrival
	// and covering connect, send and the whole response; 0 means 10s.
	Timeout time.Duration
}

// Run sends the requests and returns their results in arrival order. When
// ctx ends early, arrivals stop, requests in progress are abandoned and
// ctx's error is returned with the results of the requests that were sent.
func (o *OpenLoop) Run(ctx context.Context) ([]Result, error) {
	req, addr, err := rawRequest(o.URL)
	if err != nil {
		return nil, err
	}
	if !(o.Rate > 0) || o.Duration <= 0 {
		return nil, fmt.Errorf("loadgen: open loop needs Rate > 0 and Duration > 0, got %v and %v", o.Rate, o.Duration)
	}
	n := int(math.Ceil(o.Rate * o.Duration.Seconds()))
	if o.MaxRequests > 0 {
		n = min(n, o.MaxRequests)
	}
	timeout := cmp0(o.Timeout, 10*time.Second)
	interval := float64(time.Second) / o.Rate
	results := make([]Result, n)
	var wg sync.WaitGroup
	timer := time.NewTimer(0)
	defer timer.Stop()
	t0 := time.Now()
	sent := 0
	for i := range n {
		at := t0.Add(time.Duration(float64(i) * interval))
		if err = waitUntil(ctx, timer, at); err != nil {
			break
		}
		wg.Go(func() { results[i] = fetchOnce(ctx, addr, req, at, timeout) })
		sent++
	}
	wg.Wait()
	return results[:sent], err
}

// waitUntil blocks until at or until ctx ends, using timer.
func waitUntil(ctx context.Context, timer *time.Timer, at time.Time) error {
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err()
	}
	timer.Reset(d)
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// rawRequest returns the bytes of a GET request for rawURL, asking the
// server to close the connection after answering, and the address to dial.
func rawRequest(rawURL string) ([]byte, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, "", fmt.Errorf("loadgen: parsing url: %w", err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, "", fmt.Errorf("loadgen: url %q: want http://host:port/...", rawURL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: shardgate-loadgen\r\nConnection: close\r\n\r\n",
		u.RequestURI(), u.Host)
	return []byte(req), addr, nil
}

// fetchOnce dials addr, sends req and reads the whole response, giving up
// (and closing the connection) at start+timeout.
func fetchOnce(ctx context.Context, addr string, req []byte, start time.Time, timeout time.Duration) Result {
	deadline := start.Add(timeout)
	r := Result{Start: start}
	finish := func(err error) Result {
		r.Latency = time.Since(start)
		r.Err = err
		r.Kind = Classify(err)
		if err != nil {
			r.Status, r.RetryAfter = 0, ""
		}
		return r
	}
	d := net.Dialer{Deadline: deadline}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return finish(err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	conn.SetDeadline(deadline)
	if _, err = conn.Write(req); err != nil {
		return finish(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return finish(err)
	}
	r.Status, r.RetryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return finish(err)
}

// cmp0 returns d, or def when d is zero.
func cmp0(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
