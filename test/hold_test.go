package test

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"shardgate/internal/wait"
)

// TestTimeoutHoldKeepsLimit sends 4 requests whose view runs 3s to a
// gthread gunicorn with 4 threads, admitted 2 at a time, with
// response_timeout 1s. Each client gets 504 after 1s, but the gunicorn
// threads go on running the view: with timeout_hold (the default) the slot
// stays taken until the view returns, so the app never runs more than 2 at
// once. With timeout_hold 0 the next requests start on the busy backend
// and the app sees the break.
func TestTimeoutHoldKeepsLimit(t *testing.T) {
	for _, tc := range []struct {
		name      string
		hold      string
		overLimit bool
	}{{"default hold", "", false}, {"hold 0", "timeout_hold: 0s", true}} {
		t.Run(tc.name, func(t *testing.T) {
			app, _ := launchPythonApp(t, "app:app", func(dir string) []string {
				return []string{"APP_STATE_FILE=" + filepath.Join(dir, "state")}
			}, "-w", "1", "-k", "gthread", "--threads", "4")
			g := StartGateway(t, fmt.Sprintf(loopbackListeners+`upstreams:
  app:
    response_timeout: 1s
    queue: {timeout: 20s, lifo_after: 0s}
    %s
    backends: [{address: %q, max_inflight: 2}]
routes: [{upstream: app}]
`, tc.hold, app.Addr))
			var wg sync.WaitGroup
			codes := make([]int, 4)
			for i := range codes {
				wg.Go(func() { codes[i], _ = get(t, g.URL+"/work?ms=3000") })
			}
			wg.Wait()
			for i, c := range codes {
				if c != 504 {
					t.Errorf("request %d = %d, want 504", i, c)
				}
			}
			wait.For(t, "the views to finish", func() bool { return app.stats(t).Inflight == 0 })
			s := app.stats(t)
			if over := s.MaxInflight > 2; over != tc.overLimit {
				t.Errorf("app ran at most %d requests at once, want %s", s.MaxInflight,
					map[bool]string{false: "≤ 2 (the limit)", true: "> 2 (the break without a hold)"}[tc.overLimit])
			}
		})
	}
}
