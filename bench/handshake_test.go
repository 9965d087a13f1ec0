package main

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunHandshakesNeverResumes: every request of the tls-handshake load is
// a new connection with a full handshake.
func TestRunHandshakesNeverResumes(t *testing.T) {
	var resumed, full atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS.DidResume {
			resumed.Add(1)
		} else {
			full.Add(1)
		}
		w.Write([]byte("ok"))
	}))
	srv.TLS = &tls.Config{} // tickets on: a client that kept sessions would resume
	srv.StartTLS()
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	res, err := runHandshakes(context.Background(), addr, "/", wrkParams{conns: 4, duration: 300 * time.Millisecond, timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.requests < 4 || uint64(full.Load()) != res.requests || resumed.Load() != 0 {
		t.Errorf("requests %d, full handshakes %d, resumed %d; want every request a full handshake",
			res.requests, full.Load(), resumed.Load())
	}
	if res.p50 <= 0 || res.p99 < res.p50 || res.connect+res.read != 0 {
		t.Errorf("result %+v", res)
	}
}
