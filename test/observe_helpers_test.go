package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// obsDeadline bounds every wait for the gateway to reach a state.
const obsDeadline = 10 * time.Second

// obsBackend is a net/http backend that holds the requests hold selects until
// Release, then answers every request with 200 and body. It is safe for
// concurrent use.
type obsBackend struct {
	*Recorder
	arrived chan string // the path of each held request as it reaches the backend
	release chan struct{}
	once    sync.Once
}

func newObsBackend(t *testing.T, hold func(*http.Request) bool, body []byte) *obsBackend {
	t.Helper()
	b := &obsBackend{arrived: make(chan string, 64), release: make(chan struct{})}
	b.Recorder = NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if hold(r) {
			select {
			case b.arrived <- r.URL.Path:
			case <-b.release:
			case <-r.Context().Done():
				return
			}
			select {
			case <-b.release:
			case <-r.Context().Done():
				return
			}
		}
		_, _ = w.Write(body)
	})
	// Registered after the recorder's Close, so it runs first and Close does
	// not wait on a held handler.
	t.Cleanup(b.Release)
	return b
}

// Release lets every held request, and every later one, through.
func (b *obsBackend) Release() { b.once.Do(func() { close(b.release) }) }

// waitHeld waits until n more held requests have reached the backend.
func (b *obsBackend) waitHeld(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-b.arrived:
		case <-time.After(obsDeadline):
			t.Fatalf("held request did not reach the backend within %v", obsDeadline)
		}
	}
}

func holdPrefix(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/hold") }
func holdAll(*http.Request) bool      { return true }

// closedAddr returns a 127.0.0.1 address nothing listens on: its port was
// free a moment ago (a dead backend, or a port to start gunicorn on).
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// obsClient opens a new connection for every request, so the listener's
// accept counter equals the number of requests sent.
func obsClient(t *testing.T) *http.Client {
	tr := &http.Transport{DisableKeepAlives: true, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// obsResponse is the outcome of one request sent by obsSend.
type obsResponse struct {
	code   int
	header http.Header
	body   []byte
	took   time.Duration
	err    error
}

func (r obsResponse) String() string {
	if r.err != nil {
		return "error " + r.err.Error()
	}
	return fmt.Sprintf("%d %q (after %v)", r.code, bytes.TrimSpace(r.body), r.took.Round(time.Millisecond))
}

// obsSend sends GET url with the given Host (or the URL's) in a goroutine.
func obsSend(c *http.Client, url, host string) <-chan obsResponse {
	ch := make(chan obsResponse, 1)
	go func() {
		start := time.Now()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			ch <- obsResponse{err: err}
			return
		}
		if host != "" {
			req.Host = host
		}
		resp, err := c.Do(req)
		if err != nil {
			ch <- obsResponse{err: err, took: time.Since(start)}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		ch <- obsResponse{resp.StatusCode, resp.Header, body, time.Since(start), err}
	}()
	return ch
}

// obsAwait waits for the response of what and fails the test on a transport error.
func obsAwait(t *testing.T, ch <-chan obsResponse, what string) obsResponse {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("%s: %v", what, r.err)
		}
		return r
	case <-time.After(2 * obsDeadline):
		t.Fatalf("%s: no response within %v", what, 2*obsDeadline)
	}
	return obsResponse{}
}

// wantShed checks a 503 answered by the gateway with Retry-After and reason.
func wantShed(t *testing.T, what string, r obsResponse, reason string) {
	t.Helper()
	if r.code != http.StatusServiceUnavailable || strings.TrimSpace(string(r.body)) != reason {
		t.Errorf("%s = %v, want 503 %q", what, r, reason)
	}
	if r.header.Get("Retry-After") == "" {
		t.Errorf("%s: no Retry-After header", what)
	}
}

// obsStatus is the part of the /status JSON document the tests read.
type obsStatus struct {
	Ready     bool          `json:"ready"`
	Upstreams []obsUpstream `json:"upstreams"`
}

type obsUpstream struct {
	Name        string            `json:"name"`
	Inflight    int64             `json:"inflight"`
	QueueLength int               `json:"queue_length"`
	Requests    uint64            `json:"requests"`
	Shed        map[string]uint64 `json:"shed"`
	Backends    []obsBackendState `json:"backends"`
}

type obsBackendState struct {
	Address  string `json:"address"`
	Limit    int64  `json:"limit"`
	Inflight int64  `json:"inflight"`
	Up       bool   `json:"up"`
	Requests uint64 `json:"requests"`
}

// upstream returns the upstream called name and fails the test if it is missing.
func (s obsStatus) upstream(t *testing.T, name string) obsUpstream {
	t.Helper()
	for _, u := range s.Upstreams {
		if u.Name == name {
			return u
		}
	}
	t.Fatalf("/status has no upstream %q: %+v", name, s)
	return obsUpstream{}
}

// getStatus GETs /status asking for JSON and decodes it.
func getStatus(t *testing.T, g *Gateway) obsStatus {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.AdminURL+"/status", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET /status: %v", err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("GET /status = %d %q, want 200 application/json", resp.StatusCode, ct)
	}
	var s obsStatus
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("decoding /status: %v", err)
	}
	return s
}

// waitStatus polls /status until cond holds and returns that status.
func waitStatus(t *testing.T, g *Gateway, what string, cond func(obsStatus) bool) obsStatus {
	t.Helper()
	deadline := time.Now().Add(obsDeadline)
	for {
		s := getStatus(t, g)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("/status: %s not reached within %v; last: %+v", what, obsDeadline, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// queued reports whether upstream name of s has n requests waiting.
func queued(name string, n int) func(obsStatus) bool {
	return func(s obsStatus) bool {
		for _, u := range s.Upstreams {
			if u.Name == name {
				return u.QueueLength == n
			}
		}
		return false
	}
}

// scrape is a parsed /metrics exposition.
type scrape map[string]*dto.MetricFamily

func parseMetrics(t *testing.T, text string) scrape {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, text)
	}
	return families
}

// value returns the sample of name whose labels are exactly labels. A name
// ending in _count or _sum reads that field of a histogram, as in the text
// format.
func (s scrape) value(name string, labels map[string]string) (float64, bool) {
	fam, field := s[name], ""
	for _, suffix := range []string{"_count", "_sum"} {
		if base, ok := strings.CutSuffix(name, suffix); fam == nil && ok {
			fam, field = s[base], suffix
		}
	}
	if fam == nil {
		return 0, false
	}
	for _, m := range fam.GetMetric() {
		if !sameLabels(m.GetLabel(), labels) {
			continue
		}
		switch {
		case field == "_count":
			return float64(m.GetHistogram().GetSampleCount()), true
		case field == "_sum":
			return m.GetHistogram().GetSampleSum(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		}
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

// fmtLabels formats labels as in the text exposition: {a="1",b="2"}.
func fmtLabels(labels map[string]string) string {
	var pairs []string
	for k, v := range labels {
		pairs = append(pairs, fmt.Sprintf("%s=%q", k, v))
	}
	slices.Sort(pairs)
	return "{" + strings.Join(pairs, ",") + "}"
}

func sameLabels(got []*dto.LabelPair, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, l := range got {
		if v, ok := want[l.GetName()]; !ok || v != l.GetValue() {
			return false
		}
	}
	return true
}

// labelValues returns the values of label key over the samples of name whose
// other labels include match.
func (s scrape) labelValues(name, key string, match map[string]string) []string {
	var out []string
	for _, m := range s[name].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		ok := true
		for k, v := range match {
			ok = ok && labels[k] == v
		}
		if ok {
			out = append(out, labels[key])
		}
	}
	return out
}

// total adds every sample of a counter or gauge family.
func (s scrape) total(name string) float64 {
	var n float64
	for _, m := range s[name].GetMetric() {
		n += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return n
}

// waitIdle polls /metrics until no client connection is open and returns
// that scrape, parsed and as text.
func waitIdle(t *testing.T, g *Gateway) (scrape, string) {
	t.Helper()
	deadline := time.Now().Add(obsDeadline)
	for {
		text := g.Metrics(t)
		s := parseMetrics(t, text)
		open := s["shardgate_open_connections"]
		if open != nil && s.total("shardgate_open_connections") == 0 {
			return s, text
		}
		if time.Now().After(deadline) {
			t.Fatalf("shardgate_open_connections = %v after %v, want present and 0", open.GetMetric(), obsDeadline)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
