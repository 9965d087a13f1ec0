package demo

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestBurstCountsStatuses(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	}))
	t.Cleanup(srv.Close)

	r := Burst(t.Context(), srv.URL, 10, 5*time.Second)
	if r.Status[200] != 5 || r.Status[503] != 5 || len(r.Status) != 2 {
		t.Errorf("Burst().Status = %v, want map[200:5 503:5]", r.Status)
	}
	if r.Errors != 0 {
		t.Errorf("Burst().Errors = %d, want 0", r.Errors)
	}
	if r.Elapsed <= 0 {
		t.Errorf("Burst().Elapsed = %v, want > 0", r.Elapsed)
	}
}

func TestBurstCountsTransportErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: every request is refused

	r := Burst(t.Context(), "http://"+addr+"/", 4, 5*time.Second)
	if r.Errors != 4 || len(r.Status) != 0 {
		t.Errorf("Burst() at a closed port = %+v, want 4 errors and no statuses", r)
	}
}

func TestBurstTimeoutAndCancel(t *testing.T) {
	b := startBackend(t, &Backend{Name: "slow", Workers: 4, Delay: time.Minute})
	url := "http://" + b.Addr + "/"

	r := Burst(t.Context(), url, 3, 100*time.Millisecond)
	if r.Errors != 3 {
		t.Errorf("Burst() with timeout 100ms at a 1m backend: Errors = %d, want 3", r.Errors)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r = Burst(ctx, url, 3, 0)
	if r.Errors != 3 {
		t.Errorf("Burst() with a cancelled context: Errors = %d, want 3", r.Errors)
	}
}

func TestBurstZero(t *testing.T) {
	r := Burst(t.Context(), "http://127.0.0.1:1/", 0, time.Second)
	if r.Status == nil || len(r.Status) != 0 || r.Errors != 0 {
		t.Errorf("Burst(n=0) = %+v, want an empty non-nil Status and no errors", r)
	}
}
