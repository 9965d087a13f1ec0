package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"shardgate/config"
	"shardgate/listener"
	"shardgate/tlsconf"
)

// envParent tells a process started for a binary upgrade which process to
// stop once it serves.
const envParent = "SHARDGATE_UPGRADE_PARENT"

// adminName is the name the admin listener is handed down under.
const adminName = "admin"

// upgrader starts the binary found at this executable's path — normally a
// new version put there — with this process's listening sockets. No socket
// is closed or bound anew, so no connection waiting in an accept queue is
// reset. The new process stops this one (SIGTERM: drain and exit) once it
// serves; if it fails first, this one simply goes on.
type upgrader struct {
	groups  []*listener.Group
	admin   net.Listener          // nil when off
	slots   *os.File              // the shared slot segment
	files   map[string][]*os.File // more sockets by listen address (the supervisor's)
	tickets *tlsconf.TicketKeys
	log     *slog.Logger
}

func (u *upgrader) start() {
	if isWorker() {
		u.log.Warn("upgrade: SIGUSR2 goes to the supervisor, not to a worker; ignored")
		return
	}
	pid, err := u.spawn()
	if err != nil {
		u.log.Error("upgrade failed; still serving", "error", err)
		return
	}
	u.log.Info("upgrade: new process started", "pid", pid)
}

func (u *upgrader) spawn() (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("finding the executable: %w", err)
	}
	named := make(map[string][]*os.File)
	defer closeInherited(named) // the child has its own copies once started
	for _, g := range u.groups {
		files, err := g.Files()
		if err != nil {
			return 0, err
		}
		named[g.Address()] = files
	}
	for addr, fs := range u.files {
		for _, f := range fs {
			d, err := dupFile(f)
			if err != nil {
				return 0, err
			}
			named[addr] = append(named[addr], d)
		}
	}
	if u.admin != nil {
		f, err := u.admin.(*net.TCPListener).File()
		if err != nil {
			return 0, fmt.Errorf("duplicating the admin listener: %w", err)
		}
		named[adminName] = []*os.File{f}
	}
	if u.slots != nil {
		f, err := dupFile(u.slots)
		if err != nil {
			return 0, err
		}
		named[slotsName] = []*os.File{f}
	}
	if u.tickets != nil {
		f, err := u.tickets.File()
		if err != nil {
			return 0, err
		}
		named[ticketsName] = []*os.File{f}
	}
	env, files := listener.Export(named)
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), listener.EnvFiles+"="+env, envParent+"="+strconv.Itoa(os.Getpid()))
	cmd.ExtraFiles = files
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s: %w", exe, err)
	}
	go func() { // reap it should it die while this process still runs
		if err := cmd.Wait(); err != nil {
			u.log.Error("upgrade: new process exited", "pid", cmd.Process.Pid, "error", err)
		}
	}()
	return cmd.Process.Pid, nil
}

// takeOver stops the process that started this one for an upgrade, now that
// this one serves on the sockets it handed down.
func takeOver(log *slog.Logger) {
	v, ok := os.LookupEnv(envParent)
	if !ok {
		return
	}
	os.Unsetenv(envParent)
	pid, err := strconv.Atoi(v)
	if err != nil || pid <= 1 {
		return
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		log.Warn("upgrade: stopping the old process", "pid", pid, "error", err)
		return
	}
	log.Info("upgrade: took over; old process draining", "pid", pid)
}

// inheritedSockets returns the listening sockets this process was handed: by
// the process it replaces in a binary upgrade, or by systemd.
func inheritedSockets(ls []config.Listen, log *slog.Logger) (map[string][]*os.File, error) {
	inherited, err := listener.Import()
	if err != nil || inherited != nil {
		return inherited, err
	}
	addrs := make([]string, len(ls))
	for i, l := range ls {
		addrs[i] = l.Address
	}
	activated, err := listener.Activated(addrs)
	if err != nil {
		return nil, err
	}
	for addr, files := range activated {
		log.Info("socket activation", "listen", addr, "sockets", len(files))
	}
	return activated, nil
}

// adminListener binds the admin address, or takes over the admin socket a
// parent handed down.
func adminListener(addr string, inherited map[string][]*os.File) (net.Listener, error) {
	files := inherited[adminName]
	if len(files) == 0 {
		return net.Listen("tcp", addr)
	}
	delete(inherited, adminName)
	defer closeInherited(map[string][]*os.File{adminName: files})
	return net.FileListener(files[0])
}

func closeInherited(named map[string][]*os.File) {
	for _, files := range named {
		for _, f := range files {
			f.Close()
		}
	}
}
