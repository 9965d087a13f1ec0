package listener

import (
	"fmt"
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
