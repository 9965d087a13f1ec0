// Package admin serves shardgate's operator interface: Prometheus metrics,
// health and readiness probes, and a live status page.
//
// The request path only touches the pre-resolved handles of UpstreamMetrics
// and BackendMetrics; every gauge is read from a Snapshot at scrape time.
package admin

// Snapshot is a point-in-time copy of the gateway's live state. The wiring code
// fills it when /metrics is scraped or /status is read; admin never modifies it.
type Snapshot struct {
	Version   string           `json:"version"`
	Ready     bool             `json:"ready"`
	Listeners []ListenerStatus `json:"listeners"`
	Upstreams []UpstreamStatus `json:"upstreams"`
}

// ListenerStatus describes one configured listen address and its shards.
type ListenerStatus struct {
	// Address is the configured listen address; it is the listener label.
	Address string `json:"address"`
	// Accepted holds the connections accepted so far, indexed by shard.
	Accepted []uint64 `json:"accepted_per_shard"`
	// Open is the number of client connections currently open.
	Open int64 `json:"open_connections"`
}

// UpstreamStatus describes one upstream pool, its queue and its backends.
type UpstreamStatus struct {
	Name     string `json:"name"`
	Balancer string `json:"balancer"`
	// Inflight is the number of requests currently at the pool's backends.
	Inflight int64 `json:"inflight"`
	// MaxInflight caps Inflight over the whole pool; 0 means unlimited.
	MaxInflight int64 `json:"max_inflight"`
	// QueueLength is the number of requests waiting for a slot.
	QueueLength int `json:"queue_length"`
	// QueueMax is the configured queue.max_length.
	QueueMax int `json:"queue_max"`
	// LIFO is true while the queue serves newest-first.
	LIFO bool `json:"lifo"`
	// Requests counts the requests forwarded to this upstream's backends so
	// far (a request that failed over counts once per backend tried); shed
	// requests are counted in Shed instead.
	Requests uint64 `json:"requests"`
	// Shed counts shed requests by reason: queue_full, queue_timeout,
	// client_gone, no_backend.
	Shed     map[string]uint64 `json:"shed"`
	Backends []BackendStatus   `json:"backends"`
	// History is the last minutes for the status page's graphs; nil when
	// none is kept.
	History *History `json:"history,omitempty"`
}

// BackendStatus describes one backend of an upstream.
type BackendStatus struct {
	Address string `json:"address"`
	// Limit is the backend's max_inflight; 0 means unlimited.
	Limit    int64  `json:"limit"`
	Inflight int64  `json:"inflight"`
	Up       bool   `json:"up"`
	Requests uint64 `json:"requests"`
	Errors   uint64 `json:"errors"`
	// Reason says why the backend last left or rejoined rotation (a check,
	// an ejection); "" while nothing happened.
	Reason string `json:"reason,omitempty"`
	// Transitions are the backend's last changes in and out of rotation,
	// oldest first.
	Transitions []TransitionStatus `json:"transitions,omitempty"`
}
