package config

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// up returns a configuration whose only backend is the YAML in backend,
// which starts on line 4 (continuation lines indented by 8 spaces).
func up(backend string) string {
	return "upstreams:\n  app:\n    backends:\n      - " + backend + "\nroutes:\n  - upstream: app\n"
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		// The file as a whole.
		{"empty file", "", "empty file"},
		{"only comments", "# nothing\n\n", "empty file"},
		{"null document", "~\n", "empty document (line 1)"},
		{"top level list", "- a\n", "the top level must be a mapping, got a list (line 1)"},
		{"top level scalar", "hello\n", "the top level must be a mapping, got a string (line 1)"},
		{"syntax error", "server:\n  read_timeout: [1s\n", "invalid YAML: did not find expected ',' or ']' (line 2)"},
		{"two documents", minimal + "---\n" + minimal, "more than one YAML document (line 7)"},
		{"unknown top-level key", "listne: []\n" + minimal, "listne: unknown key (line 1)"},
		{"duplicate key", "server:\n  read_timeout: 1s\n  read_timeout: 2s\n" + minimal, "server.read_timeout: duplicate key (line 3)"},
		{"non-string key", "server:\n  [a]: 1\n" + minimal, "server: want a string key, got a list (line 2)"},
		{"section of wrong type", "server: 5\n" + minimal, "server: want a mapping, got an integer (line 1)"},
		{"merge of a scalar", "server:\n  <<: 5\n" + minimal, "server.<<: want a mapping to merge, got an integer (line 2)"},
		{"missing upstreams and routes", "log: {level: warn}\n",
			"upstreams: at least one upstream is required (line 1)\nroutes: at least one route is required (line 1)"},

		// listen and admin.
		{"listen empty list", "listen: []\n" + minimal, `listen: at least one listener is required (leave the key out for ":8080") (line 1)`},
		{"listen not a list", "listen: \":80\"\n" + minimal, "listen: want a list, got a string (line 1)"},
		{"listen address missing", "listen:\n  - shards: 2\n" + minimal, "listen[0].address: required (line 2)"},
		{"listen address without port", "listen:\n  - address: localhost\n" + minimal, `listen[0].address: want host:port, got "localhost" (line 2)`},
		{"listen address bare port", "listen:\n  - address: 8080\n" + minimal, `listen[0].address: want host:port, got "8080" (did you mean ":8080"?) (line 2)`},
		{"listen port too large", "listen:\n  - address: \":70000\"\n" + minimal, `listen[0].address: port must be a number from 0 to 65535, got "70000" (line 2)`},
		{"listen port by name", "listen:\n  - address: \":http\"\n" + minimal, `listen[0].address: port must be a number from 0 to 65535, got "http" (line 2)`},
		{"listen shards negative", "listen:\n  - address: \":80\"\n    shards: -1\n" + minimal, "listen[0].shards: must be ≥ 0 (line 3)"},
		{"listen shards huge", "listen:\n  - address: \":80\"\n    shards: 5000\n" + minimal, "listen[0].shards: must be ≤ 1024 (line 3)"},
		{"listen shards not an integer", "listen:\n  - address: \":80\"\n    shards: two\n" + minimal, `listen[0].shards: not an integer: "two" (line 3)`},
		{"listen duplicate", "listen:\n  - address: \":8080\"\n  - address: \":8080\"\n" + minimal,
			`listen[1].address: ":8080" conflicts with listen[0].address ":8080" (line 3)`},
		{"listen wildcard overlaps host", "listen:\n  - address: 127.0.0.1:80\n  - address: 0.0.0.0:80\n" + minimal,
			`listen[1].address: "0.0.0.0:80" conflicts with listen[0].address "127.0.0.1:80" (line 3)`},
		{"listen same port spelt differently", "listen:\n  - address: \"LOCALHOST:80\"\n  - address: localhost:080\n" + minimal,
			`listen[1].address: "localhost:080" conflicts with listen[0].address "LOCALHOST:80" (line 3)`},
		{"admin same as listen", "listen:\n  - address: 127.0.0.1:9000\nadmin:\n  address: 127.0.0.1:9000\n" + minimal,
			`admin.address: "127.0.0.1:9000" conflicts with listen[0].address "127.0.0.1:9000" (line 4)`},
		{"admin inside default listen", "admin:\n  address: \":8080\"\n" + minimal,
			`admin.address: ":8080" conflicts with listen[0].address ":8080" (line 2)`},
		{"default admin inside listen", "listen:\n  - address: \":9180\"\n" + minimal,
			`admin.address: "127.0.0.1:9180" conflicts with listen[0].address ":9180" (line 2)`},
		{"admin bad address", "admin:\n  address: nowhere\n" + minimal, `admin.address: want host:port, got "nowhere" (line 2)`},
		{"admin unknown key", "admin:\n  adress: \":1\"\n" + minimal, "admin.adress: unknown key (line 2)"},

		// server.
		{"duration garbage", "server:\n  read_timeout: abc\n" + minimal, `server.read_timeout: not a duration: "abc" (line 2)`},
		{"duration without unit", "server:\n  idle_timeout: 30\n" + minimal, `server.idle_timeout: not a duration: "30": missing unit, like "30s" (line 2)`},
		{"duration zero", "server:\n  write_timeout: 0\n" + minimal, "server.write_timeout: must be > 0 (line 2)"},
		{"duration negative", "server:\n  shutdown_timeout: -1s\n" + minimal, "server.shutdown_timeout: must be > 0 (line 2)"},
		{"duration of wrong type", "server:\n  read_timeout: {s: 1}\n" + minimal, "server.read_timeout: want a duration, got a mapping (line 2)"},
		{"header bytes too small", "server:\n  max_header_bytes: 512\n" + minimal, "server.max_header_bytes: must be between 1KiB and 1MiB (line 2)"},
		{"header bytes too large", "server:\n  max_header_bytes: 2MiB\n" + minimal, "server.max_header_bytes: must be between 1KiB and 1MiB (line 2)"},
		{"header count zero", "server:\n  max_header_count: 0\n" + minimal, "server.max_header_count: must be between 1 and 10000 (line 2)"},
		{"header count huge", "server:\n  max_header_count: 20000\n" + minimal, "server.max_header_count: must be between 1 and 10000 (line 2)"},
		{"uri bytes too small", "server:\n  max_uri_bytes: 100\n" + minimal, "server.max_uri_bytes: must be between 256B and 1MiB (line 2)"},
		{"uri bytes too large", "server:\n  max_uri_bytes: 2MiB\n" + minimal, "server.max_uri_bytes: must be between 256B and 1MiB (line 2)"},
		{"body bytes zero", "server:\n  max_body_bytes: 0\n" + minimal, "server.max_body_bytes: must be > 0 (line 2)"},
		{"body bytes negative", "server:\n  max_body_bytes: -1\n" + minimal, `server.max_body_bytes: not a size: "-1": must not be negative (line 2)`},
		{"size unknown unit", "server:\n  max_body_bytes: 10XB\n" + minimal,
			`server.max_body_bytes: not a size: "10XB": want bytes, or a number with B, KB, MB, GB, KiB, MiB or GiB (line 2)`},
		{"size overflow", "server:\n  max_body_bytes: 99999999999GiB\n" + minimal, `server.max_body_bytes: not a size: "99999999999GiB": too large (line 2)`},
		{"trusted proxy garbage", "server:\n  trusted_proxies:\n    - 10.0.0.0/8\n    - 10.0.0.0/33\n" + minimal,
			`server.trusted_proxies[1]: not a CIDR or IP address: "10.0.0.0/33" (line 4)`},
		{"trusted proxy with zone", "server:\n  trusted_proxies: [\"fe80::1%eth0\"]\n" + minimal,
			`server.trusted_proxies[0]: not a CIDR or IP address: "fe80::1%eth0" (line 2)`},
		{"trusted proxies not a list", "server:\n  trusted_proxies: 10.0.0.0/8\n" + minimal, "server.trusted_proxies: want a list, got a string (line 2)"},

		// log.
		{"log format", "log:\n  format: xml\n" + minimal, `log.format: must be one of text, json, got "xml" (line 2)`},
		{"log level", "log:\n  level: verbose\n" + minimal, `log.level: must be one of debug, info, warn, error, got "verbose" (line 2)`},
		{"access log buffer zero", "log:\n  access_log_buffer: 0\n" + minimal, "log.access_log_buffer: must be > 0 (line 2)"},

		// upstreams.
		{"upstreams empty", "upstreams: {}\nroutes: [{upstream: app}]\n",
			"upstreams: at least one upstream is required (line 1)\nroutes[0].upstream: unknown upstream \"app\" (line 2)"},
		{"upstream null", "upstreams:\n  app:\nroutes: [{upstream: app}]\n", "upstreams.app: want a mapping, got nothing (line 2)"},
		{"upstream name with space", "upstreams:\n  my app:\n    backends: [{address: \"h:1\"}]\nroutes: [{upstream: my app}]\n",
			`upstreams.my app: invalid upstream name "my app": use letters, digits, '_', '.' and '-' (line 2)`},
		{"upstream name empty", "upstreams:\n  \"\":\n    backends: [{address: \"h:1\"}]\nroutes: [{upstream: x}]\n",
			"upstreams.: upstream name must not be empty (line 2)\nroutes[0].upstream: unknown upstream \"x\" (line 4)"},
		{"upstream unknown key", "upstreams:\n  app:\n    backends: [{address: \"h:1\"}]\n    backendz: []\nroutes: [{upstream: app}]\n",
			"upstreams.app.backendz: unknown key (line 4)"},
		{"upstream without backends", "upstreams:\n  app:\n    balancer: p2c\nroutes: [{upstream: app}]\n",
			"upstreams.app.backends: at least one backend is required (line 3)"},
		{"upstream with empty backends", "upstreams:\n  app:\n    backends: []\nroutes: [{upstream: app}]\n",
			"upstreams.app.backends: at least one backend is required (line 3)"},
		{"discover without dns", "upstreams:\n  app:\n    discover: {port: 80}\nroutes: [{upstream: app}]\n",
			"upstreams.app.discover.dns: required (line 3)"},
		{"discover bad name", "upstreams:\n  app:\n    discover: {dns: \"app..svc\", port: 80}\nroutes: [{upstream: app}]\n",
			`upstreams.app.discover.dns: empty label in "app..svc" (line 3)`},
		{"discover name with port", "upstreams:\n  app:\n    discover: {dns: \"app.svc:80\"}\nroutes: [{upstream: app}]\n",
			`upstreams.app.discover.dns: want letters, digits, '-', '_' and '.', got "app.svc:80" (line 3)`},
		{"discover port out of range", "upstreams:\n  app:\n    discover: {dns: app.svc, port: 70000}\nroutes: [{upstream: app}]\n",
			"upstreams.app.discover.port: must be between 0 and 65535 (line 3)"},
		{"discover interval too short", "upstreams:\n  app:\n    discover: {dns: app.svc, port: 80, interval: 10ms}\nroutes: [{upstream: app}]\n",
			"upstreams.app.discover.interval: must be at least 100ms, got 10ms (line 3)"},
		{"discover resolver by name", "upstreams:\n  app:\n    discover: {dns: app.svc, port: 80, resolver: \"dns.local:53\"}\nroutes: [{upstream: app}]\n",
			`upstreams.app.discover.resolver: want ip:port, like 127.0.0.1:53 or [::1]:53, got "dns.local:53" (line 3)`},
		{"discover address", "upstreams:\n  app:\n    discover: {dns: app.svc, port: 80, address: \"h:1\"}\nroutes: [{upstream: app}]\n",
			"upstreams.app.discover.address: unknown key (line 3)"},
		{"discover limit twice", "upstreams:\n  app:\n    discover: {dns: app.svc, port: 80, max_inflight: 2, workers: 2}\nroutes: [{upstream: app}]\n",
			"upstreams.app.discover.workers: set either max_inflight or workers, not both (line 3)"},
		{"discover negative limit", "upstreams:\n  app:\n    discover: {dns: app.svc, port: 80, max_inflight: -1}\nroutes: [{upstream: app}]\n",
			"upstreams.app.discover.max_inflight: must be ≥ 0 (line 3)"},
		{"balancer", "upstreams:\n  app:\n    balancer: fastest\n    backends: [{address: \"h:1\"}]\nroutes: [{upstream: app}]\n",
			`upstreams.app.balancer: must be one of least_inflight, p2c, round_robin, random, got "fastest" (line 3)`},
		{"pool max_inflight negative", "upstreams:\n  app:\n    max_inflight: -2\n    backends: [{address: \"h:1\"}]\nroutes: [{upstream: app}]\n",
			"upstreams.app.max_inflight: must be ≥ 0 (line 3)"},
		{"connect timeout zero", "upstreams:\n  app:\n    connect_timeout: 0s\n    backends: [{address: \"h:1\"}]\nroutes: [{upstream: app}]\n",
			"upstreams.app.connect_timeout: must be > 0 (line 3)"},
		{"response timeout garbage", "upstreams:\n  app:\n    response_timeout: soon\n    backends: [{address: \"h:1\"}]\nroutes: [{upstream: app}]\n",
			`upstreams.app.response_timeout: not a duration: "soon" (line 3)`},
		{"idle conn timeout negative", "upstreams:\n  app:\n    idle_conn_timeout: -1s\n    backends: [{address: \"h:1\"}]\nroutes: [{upstream: app}]\n",
			"upstreams.app.idle_conn_timeout: must be > 0 (line 3)"},
		{"queue max_length negative", "upstreams:\n  app:\n    queue:\n      max_length: -1\n    backends: [{address: \"h:1\"}]\nroutes: [{upstream: app}]\n",
			"upstreams.app.queue.max_length: must be ≥ 0 (line 4)"},
		{"queue timeout zero", "upstreams:\n  app:\n    queue: {timeout: 0}\n    backends: [{address: \"h:1\"}]\nroutes: [{upstream: app}]\n",
			"upstreams.app.queue.timeout: must be > 0 (line 3)"},
		{"queue lifo_after negative", "upstreams:\n  app:\n    queue: {lifo_after: -1ms}\n    backends: [{address: \"h:1\"}]\nroutes: [{upstream: app}]\n",
			"upstreams.app.queue.lifo_after: must be ≥ 0 (line 3)"},
		{"queue unknown key", "upstreams:\n  app:\n    queue: {length: 3}\n    backends: [{address: \"h:1\"}]\nroutes: [{upstream: app}]\n",
			"upstreams.app.queue.length: unknown key (line 3)"},

		// backends.
		{"backend not a mapping", up("127.0.0.1:8001"), "upstreams.app.backends[0]: want a mapping, got a string (line 4)"},
		{"backend address missing", up("max_inflight: 2"), "upstreams.app.backends[0].address: required (line 4)"},
		{"backend address without host", up("address: \":8001\""), `upstreams.app.backends[0].address: host must not be empty, got ":8001" (line 4)`},
		{"backend port zero", up("address: 127.0.0.1:0"), `upstreams.app.backends[0].address: port must be a number from 1 to 65535, got "0" (line 4)`},
		{"backend url", up("address: http://127.0.0.1:8001"),
			`upstreams.app.backends[0].address: want host:port without a scheme, got "http://127.0.0.1:8001" (line 4)`},
		{"backend max_inflight negative", up("address: h:1\n        max_inflight: -1"), "upstreams.app.backends[0].max_inflight: must be ≥ 0 (line 5)"},
		{"backend max_inflight float", up("address: h:1\n        max_inflight: 1.5"), `upstreams.app.backends[0].max_inflight: not an integer: "1.5" (line 5)`},
		{"backend max_inflight quoted", up("address: h:1\n        max_inflight: \"4\""), `upstreams.app.backends[0].max_inflight: not an integer: "4" (line 5)`},
		{"backend max_inflight huge", up("address: h:1\n        max_inflight: 2000000"), "upstreams.app.backends[0].max_inflight: must be ≤ 1000000 (line 5)"},
		{"backend workers negative", up("address: h:1\n        workers: -3"), "upstreams.app.backends[0].workers: must be ≥ 0 (line 5)"},
		{"backend both limits", up("address: h:1\n        max_inflight: 4\n        workers: 2"),
			"upstreams.app.backends[0].workers: set either max_inflight or workers, not both (line 6)"},
		{"backend threads without workers", up("address: h:1\n        threads: 4"),
			"upstreams.app.backends[0].threads: needs workers > 0 (gunicorn's --threads counts per worker) (line 5)"},
		{"backend threads with workers 0", up("address: h:1\n        workers: 0\n        threads: 4"),
			"upstreams.app.backends[0].threads: needs workers > 0 (gunicorn's --threads counts per worker) (line 6)"},
		{"backend limit overflow", up("address: h:1\n        workers: 1000000\n        threads: 1000000"),
			"upstreams.app.backends[0].threads: workers × threads = 1000000000000, must be ≤ 1000000 (line 6)"},
		{"backend weight zero", up("address: h:1\n        weight: 0"), "upstreams.app.backends[0].weight: must be between 1 and 1000 (line 5)"},
		{"backend weight too large", up("address: h:1\n        weight: 1001"), "upstreams.app.backends[0].weight: must be between 1 and 1000 (line 5)"},
		{"backend unknown key", up("address: h:1\n        maxinflight: 3"), "upstreams.app.backends[0].maxinflight: unknown key (line 5)"},
		{"backend duplicate address", up("address: 127.0.0.1:8001\n      - address: 127.0.0.1:8002\n      - address: 127.0.0.1:8001"),
			`upstreams.app.backends[2].address: "127.0.0.1:8001" duplicates backends[0] (line 6)`},
		{"backends not a list", "upstreams:\n  app:\n    backends: {address: \"h:1\"}\nroutes: [{upstream: app}]\n",
			"upstreams.app.backends: want a list, got a mapping (line 3)"},

		// routes.
		{"routes empty", "upstreams:\n  app: {backends: [{address: \"h:1\"}]}\nroutes: []\n", "routes: at least one route is required (line 3)"},
		{"routes not a list", "upstreams:\n  app: {backends: [{address: \"h:1\"}]}\nroutes: app\n", "routes: want a list, got a string (line 3)"},
		{"route unknown upstream", minimal + "  - path_prefix: /api\n    upstream: api\n", `routes[1].upstream: unknown upstream "api" (line 8)`},
		{"route upstream missing", minimal + "  - path_prefix: /api\n", "routes[1].upstream: required (line 7)"},
		{"route upstream empty", minimal + "  - {path_prefix: /api, upstream: \"\"}\n", "routes[1].upstream: must not be empty (line 7)"},
		{"route unknown key", minimal + "  - {path: /api, upstream: app}\n", "routes[1].path: unknown key (line 7)"},
		{"route path without slash", minimal + "  - {path_prefix: api, upstream: app}\n", `routes[1].path_prefix: must start with "/", got "api" (line 7)`},
		{"route path with space", minimal + "  - {path_prefix: \"/a b\", upstream: app}\n", `routes[1].path_prefix: must not contain spaces or control characters, got "/a b" (line 7)`},
		{"route path with query", minimal + "  - {path_prefix: \"/a?b\", upstream: app}\n", `routes[1].path_prefix: must not contain "?" or "#", got "/a?b" (line 7)`},
		{"route duplicate", minimal + "  - host: \"*\"\n    path_prefix: /\n    upstream: app\n",
			`routes[1]: host "*" with path_prefix "/" duplicates routes[0] (line 7)`},
		{"route duplicate differs in case", minimal + "  - {host: Example.com, upstream: app}\n  - {host: example.COM, upstream: app}\n",
			`routes[2]: host "example.com" with path_prefix "/" duplicates routes[1] (line 8)`},
		{"host empty", minimal + "  - {host: \"\", upstream: app}\n", `routes[1].host: must not be empty (use "*" for any host) (line 7)`},
		{"host with port", minimal + "  - {host: \"example.com:8080\", upstream: app}\n", `routes[1].host: must not contain a port, got "example.com:8080" (line 7)`},
		{"host with space", minimal + "  - {host: \"exa mple.com\", upstream: app}\n", `routes[1].host: must not contain spaces or control characters, got "exa mple.com" (line 7)`},
		{"host star inside", minimal + "  - {host: \"a.*.com\", upstream: app}\n", `routes[1].host: "*" is allowed only as the whole host or a leading "*.", got "a.*.com" (line 7)`},
		{"host star without dot", minimal + "  - {host: \"*example.com\", upstream: app}\n", `routes[1].host: "*" is allowed only as the whole host or a leading "*.", got "*example.com" (line 7)`},
		{"host star alone in label", minimal + "  - {host: \"*.*\", upstream: app}\n", `routes[1].host: "*" is allowed only as the whole host or a leading "*.", got "*.*" (line 7)`},
		{"host empty label", minimal + "  - {host: \"example..com\", upstream: app}\n", `routes[1].host: empty label in "example..com" (line 7)`},
		{"host bad character", minimal + "  - {host: \"ex/ample.com\", upstream: app}\n", `routes[1].host: invalid character '/' in "ex/ample.com" (line 7)`},
		{"host bare ipv6", minimal + "  - {host: \"::1\", upstream: app}\n", `routes[1].host: write IPv6 addresses in brackets, like "[::1]" (line 7)`},
		{"host ipv6 with port", minimal + "  - {host: \"[::1]:80\", upstream: app}\n", `routes[1].host: must not contain a port, got "[::1]:80" (line 7)`},
		{"host bad ipv6", minimal + "  - {host: \"[1.2.3.4]\", upstream: app}\n", `routes[1].host: not an IPv6 address: "[1.2.3.4]" (line 7)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.src))
			if err == nil {
				t.Fatalf("Parse() = %+v, nil; want error %q", c, tt.want)
			}
			if c != nil {
				t.Errorf("Parse() returned a config with its error")
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Parse() error =\n%s\nwant\n%s", got, tt.want)
			}
			for _, e := range unjoin(err) {
				var ce *Error
				if !errors.As(e, &ce) {
					t.Errorf("error %q is %T, want *Error", e, e)
				}
			}
		})
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// TestErrorNamesLine pins that the error for a bad value deep in a realistic
// file names its path and its own line, not its section's.
func TestErrorNamesLine(t *testing.T) {
	src := `# production
listen:
  - address: ":8080"
    shards: 0
admin:
  address: 127.0.0.1:9180
server:
  read_timeout: 30s
  write_timeout: 30s
  max_header_bytes: 16KiB
log:
  format: json
upstreams:
  app:
    balancer: least_inflight
    queue:
      max_length: 1000
      timeout: 5s
    backends:
      - address: 127.0.0.1:8001
        max_inflight: 4
      - address: 127.0.0.1:8002
        max_inflight: -4
      - address: 127.0.0.1:8003
        workers: 2
routes:
  - host: "*"
    upstream: app
`
	_, err := Parse([]byte(src))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Parse() error = %v, want an *Error", err)
	}
	if e.Path != "upstreams.app.backends[1].max_inflight" || e.Line != 23 || e.Msg != "must be ≥ 0" {
		t.Errorf("Parse() error = %+v, want path upstreams.app.backends[1].max_inflight, line 23, must be ≥ 0", *e)
	}
	want := "upstreams.app.backends[1].max_inflight: must be ≥ 0 (line 23)"
	if err.Error() != want {
		t.Errorf("Parse() error = %q, want %q", err.Error(), want)
	}
}

// TestParseReportsAllErrors pins that every problem is reported, in line
// order, not only the first.
func TestParseReportsAllErrors(t *testing.T) {
	src := `routes:
  - upstream: nope
server:
  read_timeout: abc
  max_body_bytes: lots
upstreams:
  app:
    backends:
      - address: 127.0.0.1:8001
        weight: 0
        colour: blue
`
	_, err := Parse([]byte(src))
	if err == nil {
		t.Fatal("Parse() error = nil, want errors")
	}
	want := []string{
		`routes[0].upstream: unknown upstream "nope" (line 2)`,
		`server.read_timeout: not a duration: "abc" (line 4)`,
		`server.max_body_bytes: not a size: "lots": want bytes, or a number with B, KB, MB, GB, KiB, MiB or GiB (line 5)`,
		`upstreams.app.backends[0].weight: must be between 1 and 1000 (line 10)`,
		`upstreams.app.backends[0].colour: unknown key (line 11)`,
	}
	if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Parse() errors =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := len(unjoin(err)); n != len(want) {
		t.Errorf("Parse() joined %d errors, want %d", n, len(want))
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{Path: "a.b[1].c", Line: 23, Msg: "must be ≥ 0"}, "a.b[1].c: must be ≥ 0 (line 23)"},
		{Error{Path: "a", Msg: "required"}, "a: required"},
		{Error{Line: 3, Msg: "invalid YAML: x"}, "invalid YAML: x (line 3)"},
		{Error{Msg: "empty file"}, "empty file"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

// TestSyntaxErrorLine pins the line of YAML syntax errors, which the YAML
// library reports 0-based for parser errors and not at all on line 1.
func TestSyntaxErrorLine(t *testing.T) {
	tests := []struct {
		src  string
		want string
	}{
		{"a: 1\nb: [1\n", "invalid YAML: did not find expected ',' or ']' (line 2)"},
		{"a: 1\nb: {x: 1\n", "invalid YAML: did not find expected ',' or '}' (line 2)"},
		{"v: [A,", "invalid YAML: did not find expected node content (line 1)"},
		{"- a\nb: 1\n", "invalid YAML: did not find expected '-' indicator (line 2)"},
		{"a:\n  b: 1\n c: 2\n", "invalid YAML: did not find expected key (line 3)"},
		{"a: 1\nb: 2\nc 2\nd: 3\n", "invalid YAML: could not find expected ':' (line 3)"},
		{"a: 1\n\tb: 2\n", "invalid YAML: found a tab character that violates indentation (line 2)"},
		{"a: @x\n", "invalid YAML: found character that cannot start any token (line 1)"},
		{"a: *nope\n", "invalid YAML: unknown anchor 'nope' referenced"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.src))
		if err == nil || err.Error() != tt.want {
			t.Errorf("Parse(%q) error = %v, want %q", tt.src, err, tt.want)
		}
	}
}

// TestParseAliasBomb pins that aliases cannot make Parse expand a small file
// into an unbounded number of values.
func TestParseAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("upstreams:\n  u: &u\n    backends: [")
	for i := range 1000 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("{address: \"h:" + strconv.Itoa(i+1) + "\"}")
	}
	b.WriteString("]\n")
	for i := range 1000 {
		b.WriteString("  u" + strconv.Itoa(i) + ": *u\n")
	}
	b.WriteString("routes: [{upstream: u}]\n")
	_, err := Parse([]byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "too many mappings (more than 100000)") {
		t.Errorf("Parse(alias bomb) error = %v, want too many mappings", err)
	}
}
