package upstream

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestRetryBudget(t *testing.T) {
	p := outlierPool(t, OutlierConfig{}, 1)
	p.Update(PoolConfig{Balancer: p.m.Load().policy, Backends: p.Backends(), Retry: RetryConfig{Percent: 20, MinPerSecond: 0}})
	now := time.Unix(1_000_000, 0)
	for range 100 {
		p.Sent(now)
	}
	allowed := 0
	for range 50 {
		if p.RetryAllowed(now) {
			allowed++
		}
	}
	if allowed != 20 {
		t.Fatalf("retries allowed after 100 requests at 20%% = %d, want 20", allowed)
	}
	if p.RetryAllowed(now.Add(9 * time.Second)) {
		t.Fatal("retry allowed 9s later with the budget spent")
	}
	if p.RetryAllowed(now.Add(10 * time.Second)) {
		t.Fatal("retry allowed after the window with no new requests")
	}

	p.Update(PoolConfig{Balancer: p.m.Load().policy, Backends: p.Backends(), Retry: RetryConfig{Percent: 20, MinPerSecond: 3}})
	later := now.Add(time.Hour)
	allowed = 0
	for range 100 {
		if p.RetryAllowed(later) {
			allowed++
		}
	}
	if allowed != 30 {
		t.Fatalf("retries allowed without traffic at min_per_second 3 = %d, want 30 (10s window)", allowed)
	}
}

func TestResendable(t *testing.T) {
	reusedEOF := &ExchangeError{Err: io.EOF, Reused: true}
	tests := []struct {
		name       string
		err        error
		idempotent bool
		want       bool
	}{
		{"connect failure, POST", &DialError{Err: errors.New("refused")}, false, true},
		{"reused EOF, GET", reusedEOF, true, true},
		{"reused EOF, POST", reusedEOF, false, false},
		{"fresh connection EOF, GET", &ExchangeError{Err: io.EOF}, true, true},
		{"fresh connection EOF, POST", &ExchangeError{Err: io.EOF}, false, false},
		{"response begun, GET", &ExchangeError{Err: io.ErrUnexpectedEOF, Reused: true, Answering: true}, true, false},
		{"timeout, GET", &ExchangeError{Err: fasthttp.ErrTimeout, Reused: true}, true, false},
		{"plain error", io.EOF, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Resendable(tt.err, tt.idempotent); got != tt.want {
				t.Errorf("Resendable(%v, %v) = %v, want %v", tt.err, tt.idempotent, got, tt.want)
			}
		})
	}
}
