// Command shardgate runs the gateway: flags, signals and the wiring of
// config → objects → run. The logic lives in the packages it wires.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"

	"shardgate/config"
	"shardgate/tlsconf"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "demo" {
		return runDemo(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("shardgate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/shardgate/config.yaml", "path of the YAML configuration `file`")
	check := fs.Bool("check", false, "validate the configuration and exit 0 (valid) or 1 (invalid)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	logFormat := fs.String("log-format", "", "log format, text or json (overrides log.format)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "shardgate: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stdout, "shardgate %s %s\n", buildVersion(), runtime.Version())
		return 0
	}
	cfg, err := config.Load(*path)
	if err == nil {
		err = tlsconf.Check(cfg)
	}
	if *check {
		if err == nil {
			err = config.CheckSpoolDir(cfg.Server.SpoolDir)
		}
		warn(*path, cfg, err, stderr)
		return report(*path, err, stdout, stderr)
	}
	if err != nil {
		report(*path, err, stdout, stderr)
		return 1
	}
	log := newLogger(stderr, cfg.Log, *logFormat)
	if isWorker() {
		log = log.With("worker", os.Getenv(envWorker))
	}
	if supervising(cfg) {
		return supervise(cfg, *path, log)
	}
	if err := serve(cfg, *path, log, nil); err != nil {
		log.Error("shardgate stopped", "error", err)
		return 1
	}
	return 0
}

// report prints the outcome of -check, one problem per line.
func report(path string, err error, stdout, stderr io.Writer) int {
	if err == nil {
		fmt.Fprintf(stdout, "%s: configuration ok\n", path)
		return 0
	}
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			fmt.Fprintf(stderr, "%s: %v\n", path, e)
		}
	} else {
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
	}
	return 1
}

func newLogger(w io.Writer, lc config.Log, format string) *slog.Logger {
	if format == "" {
		format = lc.Format
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(lc.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
