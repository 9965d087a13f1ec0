package gateway

import (
	"sync"
	"time"

	"shardgate/metrics"
	"shardgate/upstream"
)

// The status page graphs each upstream's last historyLen seconds. A
// sampler goroutine reads the counters the request path keeps anyway, once
// a second, into a fixed ring per upstream: the request path does no
// extra work and nothing grows.

// historyLen is how many one-second samples an upstream keeps: 5 minutes.
const historyLen = 300

type sample struct {
	served, shed, errors   uint32
	queue, inflight, limit int32
	waitP50, waitP99       float32
}

// upstreamHistory is one upstream's ring and the totals of the last sample.
type upstreamHistory struct {
	ring [historyLen]sample
	n    int // samples taken

	answered, errors, shed uint64
	buckets, prev          []uint64
}

// historian keeps every upstream's history. Safe for concurrent use.
type historian struct {
	mu sync.Mutex // protects byName
	// byName outlives reloads, so an upstream keeps its graphs.
	byName map[string]*upstreamHistory

	stop chan struct{}
	done chan struct{}
}

// start runs the sampler until stopHistory.
func (g *Gateway) startHistory() {
	h := &g.history
	h.byName = make(map[string]*upstreamHistory)
	h.stop, h.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(h.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
				h.sampleAll(g.state.Load())
			}
		}
	}()
}

func (g *Gateway) stopHistory() {
	if g.history.stop != nil {
		close(g.history.stop)
		<-g.history.done
		g.history.stop = nil
	}
}

func (h *historian) sampleAll(st *state) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range st.upstreams {
		uh := h.byName[u.name]
		if uh == nil {
			uh = &upstreamHistory{}
			h.byName[u.name] = uh
		}
		uh.sample(u)
	}
}

// sample records the second that just ended. Totals that went down (a
// reload removed backends) count as zero for that second.
func (uh *upstreamHistory) sample(u *upstreamState) {
	p := u.pool
	var answered, errors, shed uint64
	for _, b := range p.Backends() {
		answered += b.Answered()
		errors += b.Errors()
	}
	for r := range upstream.NumShedReasons {
		shed += p.Shed(r)
	}
	s := sample{
		served:   delta(answered, uh.answered),
		errors:   delta(errors, uh.errors),
		shed:     delta(shed, uh.shed),
		queue:    int32(p.QueueLength()),
		inflight: int32(p.Inflight()),
		limit:    int32(p.MaxInflight()),
	}
	uh.answered, uh.errors, uh.shed = answered, errors, shed
	uh.prev, uh.buckets = uh.buckets, u.metrics.QueueWaitBuckets(uh.prev[:0])
	s.waitP50, s.waitP99 = quantile(uh.prev, uh.buckets, 0.5), quantile(uh.prev, uh.buckets, 0.99)
	uh.ring[uh.n%historyLen] = s
	uh.n++
}

func delta(now, before uint64) uint32 {
	if now < before {
		return 0
	}
	return uint32(min(now-before, 1<<32-1))
}

// quantile estimates the q-quantile of the observations between two
// readings of the cumulative buckets, as the upper bound of the bucket it
// falls in (the largest bound for the +Inf bucket); 0 without observations.
func quantile(before, now []uint64, q float64) float32 {
	bounds := metrics.QueueWaitBounds()
	if len(now) != len(bounds)+1 || len(before) != len(now) {
		return 0
	}
	total := now[len(now)-1] - before[len(before)-1]
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total-1)) + 1
	for i, b := range bounds {
		if now[i]-before[i] >= rank {
			return float32(b)
		}
	}
	return float32(bounds[len(bounds)-1])
}

// snapshot returns the history of upstream name, oldest first, or nil.
func (h *historian) snapshot(name string) *metrics.History {
	h.mu.Lock()
	defer h.mu.Unlock()
	uh := h.byName[name]
	if uh == nil {
		return nil
	}
	k := min(uh.n, historyLen)
	out := &metrics.History{
		Served: make([]uint32, k), Shed: make([]uint32, k), Errors: make([]uint32, k),
		Queue: make([]int32, k), Inflight: make([]int32, k), Limit: make([]int32, k),
		WaitP50: make([]float32, k), WaitP99: make([]float32, k),
	}
	for i := range k {
		s := uh.ring[(uh.n-k+i)%historyLen]
		out.Served[i], out.Shed[i], out.Errors[i] = s.served, s.shed, s.errors
		out.Queue[i], out.Inflight[i], out.Limit[i] = s.queue, s.inflight, s.limit
		out.WaitP50[i], out.WaitP99[i] = s.waitP50, s.waitP99
	}
	return out
}

// transitions converts a backend's transitions for the status page.
func transitions(b *upstream.Backend) []metrics.TransitionStatus {
	ts := b.Transitions()
	if len(ts) == 0 {
		return nil
	}
	out := make([]metrics.TransitionStatus, len(ts))
	for i, t := range ts {
		out[i] = metrics.TransitionStatus{Time: t.Time.UTC().Format(time.RFC3339), Up: t.Up, Reason: t.Reason}
	}
	return out
}
