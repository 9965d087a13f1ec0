package config

import (
	"strings"
	"testing"
)

func TestProcesses(t *testing.T) {
	if c := mustParse(t, "processes: 4\n"+minimal); c.Processes != 4 {
		t.Errorf("Processes = %d, want 4", c.Processes)
	}
	for _, tc := range []struct{ name, src, want string }{
		{"zero", "processes: 0\n", "processes: must be between 1 and 16 (line 1)"},
		{"too many", "processes: 17\n", "processes: must be between 1 and 16 (line 1)"},
		{"not an integer", "processes: auto\n", `processes: not an integer: "auto" (line 1)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src + minimal))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse() error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestProcessesWarning(t *testing.T) {
	c := mustParse(t, "processes: 4\n"+minimal)
	if w := c.Warnings(4); len(w) != 0 {
		t.Errorf("Warnings(4 CPUs) = %q, want none", w)
	}
	w := c.Warnings(2)
	if len(w) != 1 || !strings.Contains(w[0], "processes: 4 is more than the 2 CPUs") {
		t.Errorf("Warnings(2 CPUs) = %q, want one about processes", w)
	}
}
