package upstream

import (
	"testing"
	"testing/synctest"
	"time"

	"shardgate/balancer"
)

func outlierPool(t *testing.T, c OutlierConfig, n int) *Pool {
	t.Helper()
	var bs []*Backend
	for i := range n {
		bs = append(bs, NewBackend(BackendConfig{Address: "127.0.0.1:" + string(rune('1'+i)), Limit: 1, Weight: 1}))
	}
	return NewPool(PoolConfig{Balancer: balancer.NewRoundRobin(), QueueLength: 10, Timeout: time.Second,
		Backends: bs, Outlier: c})
}

func failN(p *Pool, b *Backend, n int) (ejected bool) {
	for range n {
		if p.Failed(b) {
			ejected = true
		}
	}
	return ejected
}

func TestOutlierEjectionDoubles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := outlierPool(t, OutlierConfig{Consecutive: 3, BaseTime: 2 * time.Second, MaxPercent: 50}, 2)
		b := p.Backends()[0]
		if failN(p, b, 2) || !b.Up() {
			t.Fatal("ejected after 2 failures, want 3")
		}
		p.Answered(b, 200) // a success ends the streak
		if failN(p, b, 2) || !b.Up() {
			t.Fatal("failures before a success counted towards ejection")
		}
		if !p.Failed(b) || b.Up() {
			t.Fatal("not ejected after 3 failures in a row")
		}
		for i, want := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second} {
			if i > 0 {
				if !failN(p, b, 3) {
					t.Fatalf("ejection %d did not happen", i+1)
				}
			}
			time.Sleep(want - time.Millisecond)
			synctest.Wait()
			if b.Up() {
				t.Fatalf("ejection %d ended before %v", i+1, want)
			}
			time.Sleep(time.Millisecond)
			synctest.Wait()
			if !b.Up() {
				t.Fatalf("ejection %d did not end after %v", i+1, want)
			}
		}
		// In rotation for longer than MaxEjectionTime: back to the base.
		time.Sleep(MaxEjectionTime + time.Second)
		failN(p, b, 3)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if !b.Up() {
			t.Fatal("ejection after a long good spell did not start again from the base time")
		}
	})
}

func TestOutlierEjectionCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := outlierPool(t, OutlierConfig{Consecutive: 1, BaseTime: time.Second, MaxPercent: 50}, 4)
		bs := p.Backends()
		ejected := 0
		for _, b := range bs {
			if failN(p, b, 5) {
				ejected++
			}
		}
		if ejected != 2 {
			t.Fatalf("ejected %d of 4 backends at 50%%, want 2", ejected)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		for _, b := range bs {
			if !b.Up() {
				t.Fatalf("%s still out after its ejection time", b.Address())
			}
		}
	})
}

// Regression: a single-backend upstream answered 503 "no healthy backend"
// for 2s after its backend refused one connection. The last backend in
// rotation is never ejected, whatever max_ejected_percent says.
func TestOutlierLastBackendNeverEjected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := outlierPool(t, OutlierConfig{Consecutive: 1, BaseTime: time.Second, MaxPercent: 100}, 1)
		if failN(p, p.Backends()[0], 10) || !p.Healthy() {
			t.Fatal("the only backend was ejected")
		}
		p = outlierPool(t, OutlierConfig{Consecutive: 1, BaseTime: time.Second, MaxPercent: 100}, 2)
		a, b := p.Backends()[0], p.Backends()[1]
		if !p.Failed(a) {
			t.Fatal("first of two not ejected at 100%")
		}
		if p.Failed(b) || !b.Up() {
			t.Fatal("the last backend in rotation was ejected")
		}
		time.Sleep(time.Second)
		synctest.Wait()
	})
}

func TestOutlier5xx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, on := range []bool{false, true} {
			p := outlierPool(t, OutlierConfig{Consecutive: 2, BaseTime: time.Second, MaxPercent: 50, On5xx: on}, 2)
			b := p.Backends()[0]
			p.Answered(b, 502)
			p.Answered(b, 503)
			if b.Up() == on {
				t.Errorf("eject_on_5xx %v: up after two 5xx = %v", on, b.Up())
			}
			time.Sleep(time.Second)
			synctest.Wait()
		}
	})
}

func TestOutlierOff(t *testing.T) {
	p := outlierPool(t, OutlierConfig{Consecutive: 0, BaseTime: time.Second, MaxPercent: 50}, 2)
	if failN(p, p.Backends()[0], 100) {
		t.Fatal("ejected with consecutive 0")
	}
}

func TestAnsweredAllocatesNothing(t *testing.T) {
	p := outlierPool(t, OutlierConfig{Consecutive: 3, BaseTime: time.Second, MaxPercent: 50}, 2)
	b := p.Backends()[0]
	now := time.Now()
	if n := testing.AllocsPerRun(1000, func() { p.Sent(now); p.Answered(b, 200) }); n != 0 {
		t.Fatalf("Sent+Answered allocate %v per op, want 0", n)
	}
}

// A failed connect ejects at once, within the same cap and never the last
// backend in rotation.
func TestOutlierConnectFailedEjectsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := outlierPool(t, OutlierConfig{Consecutive: 3, BaseTime: time.Second, MaxPercent: 50}, 2)
		a, b := p.Backends()[0], p.Backends()[1]
		if !p.ConnectFailed(a) || a.Up() {
			t.Fatal("a failed connect did not eject")
		}
		if _, reason := a.State(); reason != "ejected for 1s: connect failed" {
			t.Errorf("State() reason = %q", reason)
		}
		if p.ConnectFailed(b) || !b.Up() {
			t.Fatal("the last backend in rotation was ejected")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if !a.Up() {
			t.Fatal("not back after its ejection time")
		}
	})
}
