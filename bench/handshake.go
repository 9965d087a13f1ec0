package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// runHandshakes is the load of the tls-handshake scenario: conns client
// goroutines, each in a loop for p.duration opening a TLS connection (a
// full handshake: no session cache, so nothing is resumed, which wrk cannot
// promise since it keeps sessions across reconnects), sending one request
// with Connection: close and reading the response. The client offers only
// X25519, which every proxy here supports, so all do the same key exchange
// (Go would otherwise pick a post-quantum hybrid that the OpenSSL 3.0 proxies
// lack). The result fills the fields of a wrk run the report reads.
func runHandshakes(ctx context.Context, addr, path string, p wrkParams) (wrkResult, error) {
	cfg := &tls.Config{InsecureSkipVerify: true, CurvePreferences: []tls.CurveID{tls.X25519},
		NextProtos: []string{"http/1.1"}} // the bench's own certificate
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n")
	ctx, cancel := context.WithTimeout(ctx, p.duration)
	defer cancel()
	var mu sync.Mutex // protects res and lat
	var res wrkResult
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	for range p.conns {
		wg.Go(func() {
			var mine []time.Duration
			var errs wrkResult
			for ctx.Err() == nil {
				t0 := time.Now()
				if err := oneHandshake(addr, cfg, req, p.timeout, &errs); err == nil {
					mine = append(mine, time.Since(t0))
				}
			}
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, mine...)
			res.connect += errs.connect
			res.read += errs.read
			res.write += errs.write
			res.timeout += errs.timeout
			res.non2xx += errs.non2xx
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.requests = uint64(len(lat)) + res.non2xx
	if len(lat) == 0 {
		return res, fmt.Errorf("no handshake succeeded (connect errors %d, read %d)", res.connect, res.read)
	}
	slices.Sort(lat)
	pct := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	res.p50, res.p90, res.p99, res.max = pct(0.50), pct(0.90), pct(0.99), lat[len(lat)-1]
	return res, nil
}

// oneHandshake dials, handshakes, sends req and reads one response; a
// failure is counted in errs by kind.
func oneHandshake(addr string, cfg *tls.Config, req []byte, timeout time.Duration, errs *wrkResult) error {
	d := &net.Dialer{Timeout: timeout}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		errs.connect++
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(req); err != nil {
		errs.write++
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 4096), nil)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			errs.timeout++
		} else {
			errs.read++
		}
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		errs.non2xx++
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// drive runs the load of one (warm-up or measured) run: wrk, or for the
// tls-handshake scenario the handshake loop above.
func (r *runner) drive(ctx context.Context, s scenario, dir, name, addr string, p wrkParams) (wrkResult, error) {
	if s.tls && s.close {
		return runHandshakes(ctx, addr, s.path, p)
	}
	return runWrk(ctx, r.tools.wrk, dir, name, p)
}
