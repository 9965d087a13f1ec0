package demo

import (
	"strings"
	"testing"
	"time"
)

func TestReport(t *testing.T) {
	tests := []struct {
		name     string
		workers  int
		maxRun   int64
		wantCell string
		wantOver bool
	}{
		{"under the limit", 4, 3, "3/4 ok", false},
		{"at the limit", 2, 2, "2/2 ok", false},
		{"over the limit", 2, 3, "3/2 OVER LIMIT", true},
		{"zero workers means one", 0, 2, "2/1 OVER LIMIT", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &Backend{Name: "app1", Addr: "127.0.0.1:8001", Workers: tt.workers}
			b.maxIn.Store(tt.maxRun)
			b.served.Store(7)
			r := BurstResult{Status: map[int]int{503: 2, 200: 5}, Errors: 1, Elapsed: 1500 * time.Millisecond}

			var sb strings.Builder
			Report(&sb, []*Backend{b}, r)
			out := sb.String()

			if got := strings.Contains(out, "OVER LIMIT"); got != tt.wantOver {
				t.Errorf("Report() contains OVER LIMIT = %v, want %v; output:\n%s", got, tt.wantOver, out)
			}
			for _, want := range []string{"app1", "127.0.0.1:8001", tt.wantCell, " 7\n",
				"burst: 8 requests in 1.5s: 200=5 503=2 errors=1"} {
				if !strings.Contains(out, want) {
					t.Errorf("Report() output lacks %q; output:\n%s", want, out)
				}
			}
		})
	}
}
