// Package metrics owns shardgate's Prometheus registry and the handles the
// request path records into: UpstreamMetrics and BackendMetrics, every label
// child resolved when the config loads, so recording neither locks nor
// allocates. Gauges are not updated per request: they are read from a
// Snapshot of the live state at scrape time. The admin package serves the
// registry and the snapshots over HTTP; this package serves nothing.
package metrics

import "time"

// Snapshot is a point-in-time copy of the gateway's live state. The wiring code
// fills it when /metrics is scraped or /status is read; admin never modifies it.
type Snapshot struct {
	Version   string           `json:"version"`
	Ready     bool             `json:"ready"`
	Listeners []ListenerStatus `json:"listeners"`
	Upstreams []UpstreamStatus `json:"upstreams"`
	// Spool describes the spool files of large bodies; nil when unknown.
	Spool *SpoolStatus `json:"spool,omitempty"`
	// Processes is the per-process view with `processes: N` (process.go).
	Processes []ProcessStatus `json:"processes,omitempty"`
	// Cluster is the replica's cluster view; nil without `cluster` (cluster.go).
	Cluster *ClusterStatus `json:"cluster,omitempty"`
}

// SpoolStatus describes the spool files that hold large bodies.
type SpoolStatus struct {
	// Bytes is what the open spool files hold now.
	Bytes int64 `json:"bytes"`
	// SpooledRequest and SpooledResponse count the bytes written to spool
	// files so far, by direction.
	SpooledRequest  uint64 `json:"spooled_request_bytes"`
	SpooledResponse uint64 `json:"spooled_response_bytes"`
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
	// Streams is the number of responses passing through as they arrive
	// now, each holding a backend slot.
	Streams int64 `json:"streams_open"`
	// Tunnels is the number of Upgrade tunnels (WebSocket) open now.
	Tunnels int64 `json:"tunnels_open"`
	// History is the last minutes for the status page's graphs; nil when
	// none is kept.
	History *History `json:"history,omitempty"`
	// Discovery is what DNS discovery saw; nil without discover.
	Discovery *DiscoveryStatus `json:"discovery,omitempty"`
}

// DiscoveryStatus is the DNS discovery of one upstream.
type DiscoveryStatus struct {
	DNS  string `json:"dns"`
	Port int    `json:"port"` // 0: SRV records give the ports
	// Backends is the number of addresses of the last answer applied.
	Backends int `json:"backends"`
	// Lookups counts lookups by result: ok, empty (no address: no
	// backends), error (backends unchanged).
	Lookups    map[string]uint64 `json:"lookups"`
	LastLookup time.Time         `json:"last_lookup"`
	// LastError says why the last lookup failed; "" when it did not.
	LastError string `json:"last_error,omitempty"`
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
