package config

import "fmt"

// MaxProcesses bounds the processes key: the shared slot segment holds 32
// processes, and during a binary upgrade the old and the new workers
// overlap.
const MaxProcesses = 16

// Warnings returns what is valid but likely a mistake in c, one line each,
// for `shardgate -check` and the startup log: more processes than CPUs, an
// admin listener open to the network with nothing guarding it.
func (c *Config) Warnings(cpus int) []string {
	out := c.adminWarnings()
	if c.Processes > cpus {
		out = append(out, fmt.Sprintf("processes: %d is more than the %d CPUs of this machine", c.Processes, cpus))
	}
	return out
}
