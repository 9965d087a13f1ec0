package metrics

// ProcessStatus is one worker process of `processes: N`, for the process
// view of /status (served by the supervisor).
type ProcessStatus struct {
	// Worker is the worker's number, 0 to processes-1.
	Worker int `json:"worker"`
	// Pid is the process running in the slot now; 0 while it is restarted.
	Pid int `json:"pid"`
	// Ready is whether it answers /readyz.
	Ready bool `json:"ready"`
	// Restarts counts how often the supervisor restarted it.
	Restarts uint64 `json:"restarts"`
	// Held is the number of backend and pool slots it holds in the shared
	// slot segment.
	Held int64 `json:"held_slots"`
	// QueueLength is the number of requests waiting in its queues.
	QueueLength int `json:"queue_length"`
}
