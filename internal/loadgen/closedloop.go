package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ClosedLoop runs Clients concurrent clients over keep-alive connections
// (Go's net/http); each sends its next GET only when the previous one was
// answered. Configure the fields, then call Run; a ClosedLoop must not be
// changed while Run is in progress, and Run may be called again.
type ClosedLoop struct {
	// URL is the target, "http://host:port/path?query".
	URL string
	// Clients is the number of concurrent clients; it must be > 0.
	Clients int
	// Duration bounds the run: no request starts after it has passed; 0
	// means no bound besides MaxRequests.
	Duration time.Duration
	// MaxRequests bounds the number of requests over all clients; 0 means
	// no bound besides Duration. At least one of the two must be set.
	MaxRequests int
	// Timeout bounds each request, body included; 0 means 10s.
	Timeout time.Duration
}

// Run sends the requests and returns their results, grouped by client.
// When ctx ends early, clients stop and ctx's error is returned with the
// results so far.
func (c *ClosedLoop) Run(ctx context.Context) ([]Result, error) {
	if c.Clients <= 0 || (c.Duration <= 0 && c.MaxRequests <= 0) {
		return nil, fmt.Errorf("loadgen: closed loop needs Clients > 0 and a Duration or MaxRequests, got %d, %v, %d",
			c.Clients, c.Duration, c.MaxRequests)
	}
	if _, _, err := rawRequest(c.URL); err != nil {
		return nil, err
	}
	// MaxConnsPerHost: a client whose connection is not back in the pool yet
	// waits for it rather than dialling another, so the load is Clients
	// connections exactly.
	tr := &http.Transport{MaxIdleConnsPerHost: c.Clients, MaxConnsPerHost: c.Clients, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: cmp0(c.Timeout, 10*time.Second)}
	var end time.Time
	if c.Duration > 0 {
		end = time.Now().Add(c.Duration)
	}
	var tickets atomic.Int64
	take := func() bool {
		if ctx.Err() != nil || (!end.IsZero() && !time.Now().Before(end)) {
			return false
		}
		return c.MaxRequests <= 0 || tickets.Add(1) <= int64(c.MaxRequests)
	}
	perClient := make([][]Result, c.Clients)
	var wg sync.WaitGroup
	for i := range perClient {
		wg.Go(func() {
			for take() {
				perClient[i] = append(perClient[i], get(ctx, client, c.URL))
			}
		})
	}
	wg.Wait()
	var all []Result
	for _, rs := range perClient {
		all = append(all, rs...)
	}
	return all, ctx.Err()
}

// get sends one GET with client and reads the whole response.
func get(ctx context.Context, client *http.Client, url string) Result {
	r := Result{Start: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err == nil {
		var resp *http.Response
		if resp, err = client.Do(req); err == nil {
			r.Status, r.RetryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	r.Latency = time.Since(r.Start)
	if err != nil {
		r.Err, r.Kind, r.Status, r.RetryAfter = err, Classify(err), 0, ""
	}
	return r
}
