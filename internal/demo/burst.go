package demo

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"
)

// BurstResult counts the answers of one Burst.
type BurstResult struct {
	Status  map[int]int   // responses by status code
	Errors  int           // requests that got no response: refused, reset, timed out
	Elapsed time.Duration // from the first request sent to the last answer read
}

// Burst sends n concurrent GET requests to url, each from its own goroutine
// through one shared keep-alive client whose requests time out after timeout
// (0 means none), reads every body, and counts the outcomes. Cancelling ctx
// cancels the requests still running; they count as errors. Burst ignores proxy
// environment variables: the requests go to url directly.
func Burst(ctx context.Context, url string, n int, timeout time.Duration) BurstResult {
	res := BurstResult{Status: make(map[int]int)}
	if n <= 0 {
		return res
	}
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: n,
		IdleConnTimeout:     idleTimeout,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: timeout}

	codes := make([]int, n) // 0 marks a transport error
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() { codes[i] = get(ctx, client, url) })
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	for _, c := range codes {
		if c == 0 {
			res.Errors++
			continue
		}
		res.Status[c]++
	}
	return res
}

// get returns the status of one GET to url after reading its body, or 0 when
// the request or the body read fails.
func get(ctx context.Context, client *http.Client, url string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0
	}
	return resp.StatusCode
}
