package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// withUpstream returns a configuration whose upstream app has the YAML in
// extra (its lines indented by 4 spaces) before its backends; extra starts
// on line 3.
func withUpstream(extra string) string {
	return "upstreams:\n  app:\n" + extra + "    backends: [{address: 127.0.0.1:8001}]\nroutes:\n  - upstream: app\n"
}

func TestParseResilience(t *testing.T) {
	c, err := Parse([]byte(withUpstream(`    health_check: {path: /healthz, interval: 5s, timeout: 500ms, rise: 1, fall: 2, expect_status: "204", host: app.local}
    outlier_detection: {consecutive: 5, base_ejection_time: 10s, max_ejected_percent: 100, eject_on_5xx: true}
    retry_budget: {percent: 0, min_per_second: 10}
    tunnel_idle_timeout: 10m
    max_tunnels: 7
`)))
	if err != nil {
		t.Fatalf("Parse() error: %v", err)
	}
	u := c.Upstreams["app"]
	wantH := &HealthCheck{Path: "/healthz", Interval: 5 * time.Second, Timeout: 500 * time.Millisecond,
		Rise: 1, Fall: 2, ExpectMin: 204, ExpectMax: 204, Host: "app.local"}
	if !reflect.DeepEqual(u.HealthCheck, wantH) {
		t.Errorf("HealthCheck = %+v, want %+v", u.HealthCheck, wantH)
	}
	wantO := OutlierDetection{Consecutive: 5, BaseEjectionTime: 10 * time.Second, MaxEjectedPercent: 100, EjectOn5xx: true}
	if u.OutlierDetection != wantO {
		t.Errorf("OutlierDetection = %+v, want %+v", u.OutlierDetection, wantO)
	}
	if u.TunnelIdleTimeout != 10*time.Minute || u.MaxTunnels != 7 {
		t.Errorf("TunnelIdleTimeout, MaxTunnels = %v, %d, want 10m, 7", u.TunnelIdleTimeout, u.MaxTunnels)
	}
	if want := (RetryBudget{Percent: 0, MinPerSecond: 10}); u.RetryBudget != want {
		t.Errorf("RetryBudget = %+v, want %+v", u.RetryBudget, want)
	}
}

func TestParseHealthCheckDefaults(t *testing.T) {
	c, err := Parse([]byte(withUpstream("    health_check: {}\n")))
	if err != nil {
		t.Fatalf("Parse() error: %v", err)
	}
	want := &HealthCheck{Path: "/", Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3,
		ExpectMin: 200, ExpectMax: 399}
	if got := c.Upstreams["app"].HealthCheck; !reflect.DeepEqual(got, want) {
		t.Errorf("HealthCheck = %+v, want %+v", got, want)
	}
}

func TestParseResilienceErrors(t *testing.T) {
	tests := []struct{ name, extra, want string }{
		{"health path relative", "    health_check: {path: healthz}\n",
			`upstreams.app.health_check.path: must start with "/", got "healthz" (line 3)`},
		{"health interval zero", "    health_check: {interval: 0s}\n",
			"upstreams.app.health_check.interval: must be > 0 (line 3)"},
		{"health timeout over interval", "    health_check:\n      interval: 1s\n      timeout: 2s\n",
			"upstreams.app.health_check.timeout: 2s must be ≤ interval 1s (line 5)"},
		{"health default timeout over interval", "    health_check:\n      interval: 500ms\n",
			"upstreams.app.health_check.timeout: 1s must be ≤ interval 500ms (line 4)"},
		{"health fall zero", "    health_check: {fall: 0}\n",
			"upstreams.app.health_check.fall: must be between 1 and 100 (line 3)"},
		{"health expect reversed", "    health_check: {expect_status: 399-200}\n",
			`upstreams.app.health_check.expect_status: want a status code or range within 100-599 like "200-399", got "399-200" (line 3)`},
		{"health expect word", "    health_check: {expect_status: ok}\n",
			`upstreams.app.health_check.expect_status: want a status code or range within 100-599 like "200-399", got "ok" (line 3)`},
		{"health unknown key", "    health_check: {uri: /}\n",
			"upstreams.app.health_check.uri: unknown key (line 3)"},
		{"outlier percent", "    outlier_detection: {max_ejected_percent: 150}\n",
			"upstreams.app.outlier_detection.max_ejected_percent: must be between 0 and 100 (line 3)"},
		{"outlier negative", "    outlier_detection: {consecutive: -1}\n",
			"upstreams.app.outlier_detection.consecutive: must be ≥ 0 (line 3)"},
		{"outlier bool", "    outlier_detection: {eject_on_5xx: yes please}\n",
			`upstreams.app.outlier_detection.eject_on_5xx: not a boolean: "yes please": want true or false (line 3)`},
		{"outlier base zero", "    outlier_detection: {base_ejection_time: 0s}\n",
			"upstreams.app.outlier_detection.base_ejection_time: must be > 0 (line 3)"},
		{"retry negative", "    retry_budget: {min_per_second: -3}\n",
			"upstreams.app.retry_budget.min_per_second: must be ≥ 0 (line 3)"},
		{"tunnel idle zero", "    tunnel_idle_timeout: 0s\n",
			"upstreams.app.tunnel_idle_timeout: must be > 0 (line 3)"},
		{"max tunnels negative", "    max_tunnels: -1\n",
			"upstreams.app.max_tunnels: must be ≥ 0 (line 3)"},
		{"timeout hold negative", "    timeout_hold: -1s\n",
			"upstreams.app.timeout_hold: must be ≥ 0 (line 3)"},
		{"retry percent", "    retry_budget: {percent: 5000}\n",
			"upstreams.app.retry_budget.percent: must be between 0 and 1000 (line 3)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(withUpstream(tt.extra)))
			var ce *Error
			if err == nil || !errors.As(err, &ce) {
				t.Fatalf("Parse() error = %v, want %q", err, tt.want)
			}
			if got := strings.TrimSpace(err.Error()); got != tt.want {
				t.Errorf("Parse() error = %q, want %q", got, tt.want)
			}
		})
	}
}
