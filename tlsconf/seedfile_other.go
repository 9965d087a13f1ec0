//go:build !linux

package tlsconf

import "os"

// seedFile is an unlinked temporary file where there is no memfd.
func seedFile() (*os.File, error) {
	f, err := os.CreateTemp("", "shardgate-tickets-")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}
