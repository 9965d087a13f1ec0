package gateway

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"shardgate/config"
)

func TestWantsStream(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		accel       string
		want        bool
	}{
		{"event stream", "text/event-stream", "", true},
		{"event stream with charset", "Text/Event-Stream; charset=utf-8", "", true},
		{"accel no", "application/json", "no", true},
		{"accel NO spaced", "text/plain", " NO ", true},
		{"accel yes", "text/event-stream", "yes", true},
		{"plain", "text/html", "", false},
		{"accel yes plain", "text/html", "yes", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h fasthttp.ResponseHeader
			h.SetContentType(tt.contentType)
			if tt.accel != "" {
				h.Set("X-Accel-Buffering", tt.accel)
			}
			if got := wantsStream(&h); got != tt.want {
				t.Errorf("wantsStream() = %v, want %v", got, tt.want)
			}
			if v := h.Peek("X-Accel-Buffering"); v != nil {
				t.Errorf("X-Accel-Buffering = %q left in the response, want it removed", v)
			}
		})
	}
}

// Regression: response names keep the backend's spelling, and a lowercase
// x-accel-buffering was neither honoured nor removed.
func TestWantsStreamAnySpelling(t *testing.T) {
	for _, name := range []string{"x-accel-buffering", "X-ACCEL-BUFFERING"} {
		var h fasthttp.ResponseHeader
		h.DisableNormalizing()
		h.SetContentType("text/html")
		h.Set(name, "no")
		if !wantsStream(&h) {
			t.Errorf("wantsStream() with %s: no = false, want true", name)
		}
		for k := range h.All() {
			if eqFold(k, "X-Accel-Buffering") {
				t.Errorf("%s left in the response", k)
			}
		}
	}
}

func TestRateCheck(t *testing.T) {
	tests := []struct {
		name    string
		min     int64
		bytes   int64 // sent over the window
		window  time.Duration
		wantCut bool
	}{
		{"off", 0, 0, 2 * rateWindow, false},
		{"fast enough", 1024, 12 * 1024, rateWindow + time.Second, false},
		{"too slow", 1024, 5 * 1024, rateWindow, true},
		{"window not over", 1024, 0, rateWindow / 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := rateCheck{min: tt.min}
			if err := rc.check(0); err != nil {
				t.Fatalf("first check() = %v, want nil", err)
			}
			rc.winStart = rc.winStart.Add(-tt.window)
			err := rc.check(tt.bytes)
			if (err != nil) != tt.wantCut {
				t.Errorf("check() after %d bytes in %v at min %d B/s = %v, want cut: %v", tt.bytes, tt.window, tt.min, err, tt.wantCut)
			}
		})
	}
}

func TestRouteView(t *testing.T) {
	u := &upstreamState{name: "app"}
	if v := routeView(u, config.Route{Buffering: true}); v != u {
		t.Errorf("routeView() of a default route = a copy, want the upstream itself")
	}
	v := routeView(u, config.Route{Buffering: false, ResponseTimeout: time.Hour})
	if v == u || !v.stream || v.timeout != time.Hour || v.name != "app" {
		t.Errorf("routeView() = %+v, want a copy of app with stream and timeout 1h", v)
	}
	if u.stream || u.timeout != 0 {
		t.Errorf("routeView() changed the upstream: %+v", u)
	}
}
