package main

import (
	"log/slog"

	"shardgate/gateway"
)

// reopenAccessLog handles SIGUSR1: the access log file is opened again, at
// its configured path, so logrotate can move the old one away.
func reopenAccessLog(gw *gateway.Gateway, log *slog.Logger) {
	if err := gw.ReopenAccessLog(); err != nil {
		log.Error("reopening the access log failed; still writing to the old file", "error", err)
		return
	}
	log.Info("access log reopened")
}
