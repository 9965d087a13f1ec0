package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"

	"shardgate/admin"
	"shardgate/metrics"
)

// The supervisor's admin listener shows the instance as one: it asks each
// worker (over the worker's private admin socket) and merges. Counters,
// histograms and per-process gauges (queue length, open connections) are
// summed; gauges that every worker reads from the shared slot segment
// (in-flight counts) or that describe the build are the same in every
// worker and shown once (the largest).

// sameInEveryWorker lists the gauges that are not summed.
var sameInEveryWorker = map[string]bool{
	"shardgate_upstream_inflight":             true,
	"shardgate_backend_inflight":              true,
	"shardgate_backend_max_inflight":          true,
	"shardgate_backend_up":                    true,
	"shardgate_discovery_backends":            true, // each worker resolves the same name
	"shardgate_build_info":                    true,
	"shardgate_config_last_reload_successful": true,
	"process_start_time_seconds":              true,
}

// setupAdmin builds the instance's admin server on s.admin: the merged
// endpoints, behind the guard and TLS of admin (the workers' private
// sockets have neither).
func (s *supervisor) setupAdmin() error {
	s.edge, s.reg = &edges{stop: func() {}}, prometheus.NewRegistry()
	if s.node != nil { // the workers run no node: the supervisor's are the cluster metrics
		metrics.RegisterCluster(s.reg, s.node.Status)
	}
	as := admin.NewServer(nil, s.snapshot, s.allReady)
	as.SetGatherer(prometheus.GathererFunc(s.gather))
	as.SetProfiles(s.workerProfile(admin.Profiles()))
	ln, err := s.edge.setupAdmin(s.cfg.Admin, as, s.admin, s.reg, s.log)
	if err != nil {
		return err
	}
	s.adminSrv, s.adminLn = as, ln
	return nil
}

// serveAdmin serves the merged admin endpoints; the returned func stops it.
func (s *supervisor) serveAdmin() func() {
	if s.adminSrv == nil {
		return func() {}
	}
	go func() {
		if err := s.adminSrv.Serve(s.adminLn); err != nil {
			s.log.Error("admin server stopped", "error", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.adminSrv.Shutdown(ctx)
	}
}

// workerProfile serves /debug/pprof/...?worker=N from worker N (the
// supervisor's own profiles without worker=).
func (s *supervisor) workerProfile(own http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query().Get("worker")
		if v == "" {
			own.ServeHTTP(w, r)
			return
		}
		i, err := strconv.Atoi(v)
		if err != nil || i < 0 || i >= len(s.workers) || s.workers[i].client == nil {
			http.Error(w, "no such worker", http.StatusNotFound)
			return
		}
		proxy := &httputil.ReverseProxy{
			Rewrite:   func(pr *httputil.ProxyRequest) { pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "worker" },
			Transport: s.workers[i].client.Transport,
		}
		proxy.ServeHTTP(w, r)
	}
}

func (s *supervisor) allReady() bool {
	for _, w := range s.workers {
		if w.client != nil && !w.isReady() {
			return false
		}
	}
	return true
}

// gather merges the workers' /metrics.
func (s *supervisor) gather() ([]*dto.MetricFamily, error) {
	merged := map[string]*dto.MetricFamily{}
	index := map[string]*dto.Metric{} // family name + labels → merged metric
	var errs []error
	for _, w := range s.workers {
		fams, err := w.metrics()
		if err != nil {
			errs = append(errs, fmt.Errorf("worker %d: %w", w.index, err))
			continue
		}
		for name, f := range fams {
			into := merged[name]
			if into == nil {
				into = &dto.MetricFamily{Name: f.Name, Help: f.Help, Type: f.Type, Unit: f.Unit}
				merged[name] = into
			}
			for _, m := range f.Metric {
				key := name + labelKey(m)
				if prev := index[key]; prev != nil {
					mergeMetric(prev, m, f.GetType(), sameInEveryWorker[name])
					continue
				}
				index[key] = m
				into.Metric = append(into.Metric, m)
			}
		}
	}
	out := make([]*dto.MetricFamily, 0, len(merged))
	for _, name := range slices.Sorted(maps.Keys(merged)) {
		out = append(out, merged[name])
	}
	own, err := s.reg.Gather() // the admin guard's refusals, the cluster's
	out = append(out, own...)
	errs = append(errs, err)
	return out, errors.Join(errs...)
}

func labelKey(m *dto.Metric) string {
	var b strings.Builder
	for _, l := range m.Label {
		b.WriteString("\xff")
		b.WriteString(l.GetName())
		b.WriteString("=")
		b.WriteString(l.GetValue())
	}
	return b.String()
}

// mergeMetric adds m into into: sums, or the larger gauge when same.
func mergeMetric(into, m *dto.Metric, t dto.MetricType, same bool) {
	switch t {
	case dto.MetricType_COUNTER:
		*into.Counter.Value += m.Counter.GetValue()
	case dto.MetricType_GAUGE:
		if same {
			*into.Gauge.Value = max(into.Gauge.GetValue(), m.Gauge.GetValue())
		} else {
			*into.Gauge.Value += m.Gauge.GetValue()
		}
	case dto.MetricType_UNTYPED:
		*into.Untyped.Value += m.Untyped.GetValue()
	case dto.MetricType_HISTOGRAM:
		h, o := into.Histogram, m.Histogram
		*h.SampleCount += o.GetSampleCount()
		*h.SampleSum += o.GetSampleSum()
		for i := range min(len(h.Bucket), len(o.Bucket)) {
			*h.Bucket[i].CumulativeCount += o.Bucket[i].GetCumulativeCount()
		}
	case dto.MetricType_SUMMARY: // quantiles cannot be merged; counts can
		*into.Summary.SampleCount += m.Summary.GetSampleCount()
		*into.Summary.SampleSum += m.Summary.GetSampleSum()
	}
}

func (w *worker) metrics() (map[string]*dto.MetricFamily, error) {
	resp, err := w.client.Get("http://worker/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

func (w *worker) status() (metrics.Snapshot, error) {
	var snap metrics.Snapshot
	resp, err := w.client.Get("http://worker/status?format=json")
	if err != nil {
		return snap, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&snap)
	return snap, err
}

// snapshot merges the workers' /status into one, with the process view.
func (s *supervisor) snapshot() metrics.Snapshot {
	out := metrics.Snapshot{Version: buildVersion(), Ready: true}
	held := map[int64]int64{}
	for _, p := range s.seg.Procs() {
		held[p.Pid] += p.Held
	}
	for _, w := range s.workers {
		ps := metrics.ProcessStatus{Worker: w.index, Pid: int(w.pid.Load()), Restarts: w.restarts.Load()}
		ps.Held = held[int64(ps.Pid)]
		snap, err := w.status()
		if err != nil || ps.Pid == 0 {
			out.Ready = false
			out.Processes = append(out.Processes, ps)
			continue
		}
		ps.Ready = snap.Ready
		out.Ready = out.Ready && snap.Ready
		for _, u := range snap.Upstreams {
			ps.QueueLength += u.QueueLength
		}
		out.Processes = append(out.Processes, ps)
		mergeListeners(&out, snap.Listeners)
		mergeUpstreams(&out, snap.Upstreams)
		mergeSpool(&out, snap.Spool)
	}
	if s.node != nil {
		out.Cluster = s.node.Status()
	}
	return out
}

func mergeListeners(out *metrics.Snapshot, ls []metrics.ListenerStatus) {
	for _, l := range ls {
		i := slices.IndexFunc(out.Listeners, func(x metrics.ListenerStatus) bool { return x.Address == l.Address })
		if i < 0 {
			out.Listeners = append(out.Listeners, l)
			continue
		}
		out.Listeners[i].Accepted = append(out.Listeners[i].Accepted, l.Accepted...) // shards of every worker
		out.Listeners[i].Open += l.Open
	}
}

func mergeSpool(out *metrics.Snapshot, sp *metrics.SpoolStatus) {
	if sp == nil {
		return
	}
	if out.Spool == nil {
		out.Spool = &metrics.SpoolStatus{}
	}
	out.Spool.Bytes += sp.Bytes
	out.Spool.SpooledRequest += sp.SpooledRequest
	out.Spool.SpooledResponse += sp.SpooledResponse
}

func mergeUpstreams(out *metrics.Snapshot, us []metrics.UpstreamStatus) {
	for _, u := range us {
		i := slices.IndexFunc(out.Upstreams, func(x metrics.UpstreamStatus) bool { return x.Name == u.Name })
		if i < 0 {
			out.Upstreams = append(out.Upstreams, u)
			continue
		}
		m := &out.Upstreams[i]
		m.Inflight = max(m.Inflight, u.Inflight) // shared: the same in every worker
		m.QueueLength += u.QueueLength
		m.Streams += u.Streams
		m.Tunnels += u.Tunnels
		m.LIFO = m.LIFO || u.LIFO
		m.Requests += u.Requests
		mergeDiscovery(m, u.Discovery)
		for r, n := range u.Shed {
			if m.Shed == nil {
				m.Shed = map[string]uint64{}
			}
			m.Shed[r] += n
		}
		for _, b := range u.Backends {
			j := slices.IndexFunc(m.Backends, func(x metrics.BackendStatus) bool { return x.Address == b.Address })
			if j < 0 {
				m.Backends = append(m.Backends, b)
				continue
			}
			mb := &m.Backends[j]
			mb.Inflight = max(mb.Inflight, b.Inflight)
			mb.Up = mb.Up || b.Up
			mb.Requests += b.Requests
			mb.Errors += b.Errors
		}
	}
}

// mergeDiscovery adds another worker's DNS discovery d to m. Every worker
// resolves on its own: lookups are summed, the rest is the latest lookup's.
func mergeDiscovery(m *metrics.UpstreamStatus, d *metrics.DiscoveryStatus) {
	o := m.Discovery
	if o == nil || d == nil {
		m.Discovery = cmp.Or(o, d)
		return
	}
	latest := *o
	if d.LastLookup.After(o.LastLookup) {
		latest = *d
	}
	latest.Lookups = make(map[string]uint64, len(o.Lookups))
	for _, ls := range []map[string]uint64{o.Lookups, d.Lookups} {
		for r, n := range ls {
			latest.Lookups[r] += n
		}
	}
	m.Discovery = &latest
}

// supervisorOnly is a worker's private admin socket (an abstract unix
// socket, which any local process could connect to): it accepts only
// connections from the worker's parent, the supervisor, by SO_PEERCRED.
type supervisorOnly struct{ net.Listener }

func (l supervisorOnly) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if peerPid(c) == os.Getppid() {
			return c, nil
		}
		c.Close()
	}
}

// peerPid returns the pid of the process at the other end of unix socket c,
// or -1.
func peerPid(c net.Conn) int {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return -1
	}
	pid := -1
	raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			pid = int(cred.Pid)
		}
	})
	return pid
}
