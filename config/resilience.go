package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// HealthCheck configures the active health checks of an upstream's
// backends: an HTTP/1.1 GET sent every Interval on a connection of its own,
// outside the backends' admission slots.
type HealthCheck struct {
	// Path is the request target of a check (YAML key path). Default "/";
	// must start with "/".
	Path string
	// Interval is the time between the starts of two checks of one
	// backend (YAML key interval). Default 2s; must be > 0.
	Interval time.Duration
	// Timeout bounds one check, connect included (YAML key timeout).
	// Default 1s; must be > 0 and ≤ interval.
	Timeout time.Duration
	// Rise is how many checks in a row must pass to bring a down backend
	// back (YAML key rise). Default 2; must be between 1 and 100.
	Rise int
	// Fall is how many checks in a row must fail to mark a backend down
	// (YAML key fall). Default 3; must be between 1 and 100.
	Fall int
	// ExpectMin and ExpectMax bound the status codes that pass (YAML key
	// expect_status: "200-399" (default), or one code such as "200").
	ExpectMin, ExpectMax int
	// Host is the Host header of a check (YAML key host). Default "": the
	// backend's address.
	Host string
}

// OutlierDetection configures passive ejection: a backend whose requests
// fail Consecutive times in a row takes no new requests for a while.
type OutlierDetection struct {
	// Consecutive is how many failed exchanges in a row (resets,
	// protocol errors, timeouts, and 5xx answers when EjectOn5xx) eject a
	// backend (YAML key consecutive); a failed connect ejects it at once.
	// Default 3; 0 turns ejection off. Must be ≥ 0.
	Consecutive int
	// BaseEjectionTime is the first ejection's length (YAML key
	// base_ejection_time); each repeat doubles it, up to 5m. Default 2s;
	// must be > 0.
	BaseEjectionTime time.Duration
	// MaxEjectedPercent caps the share of the upstream's backends ejected
	// at once, rounded down (YAML key max_ejected_percent). Default 50;
	// must be between 0 and 100. The last backend in rotation is never
	// ejected, whatever the percentage.
	MaxEjectedPercent int
	// EjectOn5xx counts 5xx answers of the backend as failures (YAML key
	// eject_on_5xx). Default false.
	EjectOn5xx bool
}

// RetryBudget bounds the retries of an upstream (Finagle's retry budget):
// over the last 10 seconds, retries may add Percent percent to the requests
// sent, plus MinPerSecond per second whatever the traffic.
type RetryBudget struct {
	// Percent is the retries allowed per 100 requests (YAML key percent).
	// Default 20; must be between 0 and 1000.
	Percent int
	// MinPerSecond is the retries allowed per second even at low traffic
	// (YAML key min_per_second). Default 3; must be ≥ 0. With both 0 no
	// request is retried.
	MinPerSecond int
}

// Defaults of the resilience sections.
const (
	defaultHealthPath        = "/"
	defaultHealthInterval    = 2 * time.Second
	defaultHealthTimeout     = time.Second
	defaultHealthRise        = 2
	defaultHealthFall        = 3
	defaultConsecutive       = 3
	defaultBaseEjectionTime  = 2 * time.Second
	defaultMaxEjectedPercent = 50
	defaultRetryPercent      = 20
	defaultRetryMinPerSecond = 3
)

func defaultOutlier() OutlierDetection {
	return OutlierDetection{
		Consecutive:       defaultConsecutive,
		BaseEjectionTime:  defaultBaseEjectionTime,
		MaxEjectedPercent: defaultMaxEjectedPercent,
	}
}

func defaultRetryBudget() RetryBudget {
	return RetryBudget{Percent: defaultRetryPercent, MinPerSecond: defaultRetryMinPerSecond}
}

func (d *decoder) healthCheck(path string, n *yaml.Node) *HealthCheck {
	h := &HealthCheck{
		Path: defaultHealthPath, Interval: defaultHealthInterval, Timeout: defaultHealthTimeout,
		Rise: defaultHealthRise, Fall: defaultHealthFall, ExpectMin: 200, ExpectMax: 399,
	}
	present := d.mapping(path, n, fields{
		"path":     d.str(&h.Path, pathPrefix),
		"interval": d.duration(&h.Interval, positive),
		"timeout":  d.duration(&h.Timeout, positive),
		"rise":     d.integer(&h.Rise, between(1, 100)),
		"fall":     d.integer(&h.Fall, between(1, 100)),
		"expect_status": field(d, &h.ExpectMin, "a status code or range", func(n *yaml.Node) (int, error) {
			lo, hi, err := parseStatusRange(n.Value)
			h.ExpectMax = hi
			return lo, err
		}),
		"host": d.str(&h.Host, healthHost),
	})
	if present == nil {
		return h
	}
	if t := present["timeout"]; h.Timeout > h.Interval {
		if t == nil {
			t = present["interval"]
		}
		d.add(join(path, "timeout"), t, "%v must be ≤ interval %v", h.Timeout, h.Interval)
	}
	return h
}

// parseStatusRange parses "200-399" or "204".
func parseStatusRange(s string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(strings.TrimSpace(s), "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi = lo
	var err2 error
	if isRange {
		hi, err2 = strconv.Atoi(strings.TrimSpace(b))
	}
	if err1 != nil || err2 != nil || lo < 100 || hi > 599 || lo > hi {
		return 0, 0, fmt.Errorf("want a status code or range within 100-599 like \"200-399\", got %q", s)
	}
	return lo, hi, nil
}

func healthHost(s string) string {
	if strings.ContainsFunc(s, badRune) {
		return fmt.Sprintf("must not contain spaces or control characters, got %q", s)
	}
	return ""
}

func (d *decoder) outlier(path string, n *yaml.Node, o *OutlierDetection) {
	d.mapping(path, n, fields{
		"consecutive":         d.integer(&o.Consecutive, nonNegative, atMost(1000)),
		"base_ejection_time":  d.duration(&o.BaseEjectionTime, positive),
		"max_ejected_percent": d.integer(&o.MaxEjectedPercent, between(0, 100)),
		"eject_on_5xx":        d.boolean(&o.EjectOn5xx),
	})
}

func (d *decoder) retryBudget(path string, n *yaml.Node, r *RetryBudget) {
	d.mapping(path, n, fields{
		"percent":        d.integer(&r.Percent, between(0, 1000)),
		"min_per_second": d.integer(&r.MinPerSecond, nonNegative, atMost(maxLimit)),
	})
}
