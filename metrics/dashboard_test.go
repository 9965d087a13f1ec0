package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

const dashboardPath = "../dashboards/shardgate.json"

// dashboardExprs returns every PromQL expression of the Grafana dashboard:
// panel targets and template variable queries.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatalf("reading dashboard: %v", err)
	}
	var d struct {
		SchemaVersion int `json:"schemaVersion"`
		Panels        []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				Query      any    `json:"query"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion = %d, want a current Grafana schema (>= 36)", d.SchemaVersion)
	}
	hasDatasource := false
	var exprs []string
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasDatasource = true
		}
		if v.Definition != "" {
			exprs = append(exprs, v.Definition)
		}
	}
	if !hasDatasource {
		t.Errorf("dashboard lacks a prometheus `datasource` template variable")
	}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				t.Errorf("panel %q has a target without expr", p.Title)
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	return exprs
}

var metricName = regexp.MustCompile(`\b(shardgate|go|process)_[a-zA-Z0-9_]+`)

func TestDashboardUsesOnlyDesignMetrics(t *testing.T) {
	exprs := dashboardExprs(t)
	if len(exprs) < 10 {
		t.Fatalf("dashboard has %d expressions, want at least the panels of the core metrics", len(exprs))
	}
	used := map[string]bool{}
	for _, expr := range exprs {
		if strings.Count(expr, "(") != strings.Count(expr, ")") || strings.Count(expr, "{") != strings.Count(expr, "}") {
			t.Errorf("unbalanced expression %q", expr)
		}
		for _, name := range metricName.FindAllString(expr, -1) {
			base, want := name, designTable[name]
			if _, ok := designTable[name]; !ok {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(name, suffix); ok {
						base, want = b, designTable[b]
					}
				}
				if _, ok := designTable[base]; !ok || want.typ != dto.MetricType_HISTOGRAM {
					t.Errorf("expression %q uses %s, which is not in the metrics table of docs/DESIGN.md", expr, name)
					continue
				}
			}
			used[base] = true
		}
	}
	for _, name := range []string{"shardgate_requests_total", "shardgate_request_duration_seconds",
		"shardgate_queue_length", "shardgate_queue_wait_seconds", "shardgate_backend_inflight",
		"shardgate_backend_max_inflight", "shardgate_requests_shed_total", "shardgate_backend_up",
		"shardgate_access_log_dropped_total"} {
		if !used[name] {
			t.Errorf("dashboard has no panel on %s", name)
		}
	}
}
