package listener

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
)

// EnvFiles names the environment variable through which a process hands its
// listening sockets to the process it starts for a binary upgrade: a list
// "name=count,name=count" whose files follow, in that order, from descriptor
// 3 on (exec.Cmd.ExtraFiles).
const EnvFiles = "SHARDGATE_FDS"

// Export lays out named socket files for a child process: the value of
// EnvFiles and the files in the order ExtraFiles must list them. Names are
// sorted so the layout is deterministic.
func Export(named map[string][]*os.File) (env string, files []*os.File) {
	names := make([]string, 0, len(named))
	for name := range named {
		names = append(names, name)
	}
	slices.Sort(names)
	parts := make([]string, 0, len(names))
	for _, name := range names {
		parts = append(parts, name+"="+strconv.Itoa(len(named[name])))
		files = append(files, named[name]...)
	}
	return strings.Join(parts, ","), files
}

// Import returns the socket files a parent handed down through EnvFiles, by
// name, and unsets the variable so that a later child does not see it. It
// returns nil when there is nothing to inherit. The caller owns the files.
func Import() (map[string][]*os.File, error) {
	v, ok := os.LookupEnv(EnvFiles)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(EnvFiles)
	fds, err := parseFiles(v)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]*os.File, len(fds))
	for name, list := range fds {
		for _, fd := range list {
			out[name] = append(out[name], os.NewFile(fd, name))
		}
	}
	return out, nil
}

// parseFiles maps an EnvFiles value onto descriptors 3, 4, … by name.
func parseFiles(v string) (map[string][]uintptr, error) {
	out := make(map[string][]uintptr)
	fd := uintptr(3)
	for part := range strings.SplitSeq(v, ",") {
		if part == "" {
			continue
		}
		i := strings.LastIndexByte(part, '=')
		if i <= 0 {
			return nil, fmt.Errorf("listener: malformed %s entry %q", EnvFiles, part)
		}
		n, err := strconv.Atoi(part[i+1:])
		if err != nil || n < 1 {
			return nil, fmt.Errorf("listener: malformed %s entry %q", EnvFiles, part)
		}
		name := part[:i]
		for range n {
			out[name] = append(out[name], fd)
			fd++
		}
	}
	return out, nil
}

// Activated returns the listening sockets systemd passed to this process
// (socket activation: LISTEN_PID, LISTEN_FDS, descriptors from 3 on), keyed by
// the entry of addresses each is bound to, and unsets the variables. A socket
// matches an address with the same port and the same IP, an unspecified
// host (":8080", "0.0.0.0:8080", "[::]:8080") matching any unspecified one.
// A passed socket that matches no address is an error: the unit and the
// config disagree. It returns nil when nothing was passed.
func Activated(addresses []string) (map[string][]*os.File, error) {
	pid, _ := strconv.Atoi(os.Getenv("LISTEN_PID"))
	n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if pid != os.Getpid() || n <= 0 {
		return nil, nil
	}
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		os.Unsetenv(v)
	}
	out := make(map[string][]*os.File)
	for fd := 3; fd < 3+n; fd++ {
		f := os.NewFile(uintptr(fd), "LISTEN_FD_"+strconv.Itoa(fd))
		name, err := matchAddress(f, addresses)
		if err != nil {
			f.Close()
			for _, files := range out {
				closeFiles(files)
			}
			return nil, err
		}
		out[name] = append(out[name], f)
	}
	return out, nil
}

// matchAddress returns the entry of addresses that the socket f is bound to.
func matchAddress(f *os.File, addresses []string) (string, error) {
	ln, err := net.FileListener(f)
	if err != nil {
		return "", fmt.Errorf("listener: activated socket %s: %w", f.Name(), err)
	}
	bound, ok := ln.Addr().(*net.TCPAddr)
	ln.Close()
	if !ok {
		return "", fmt.Errorf("listener: activated socket %s: %w", f.Name(), ErrNotListener)
	}
	for _, a := range addresses {
		want, err := net.ResolveTCPAddr("tcp", a)
		if err != nil || want.Port != bound.Port {
			continue
		}
		if want.IP == nil || want.IP.IsUnspecified() {
			if bound.IP.IsUnspecified() {
				return a, nil
			}
			continue
		}
		if want.IP.Equal(bound.IP) {
			return a, nil
		}
	}
	return "", fmt.Errorf("listener: activated socket %s bound to %s matches no listen address", f.Name(), bound)
}
