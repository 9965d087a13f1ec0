package accesslog

import (
	"errors"
	"fmt"
	"os"
)

// reopenRequest asks the writer goroutine to switch to file f and answer on
// done.
type reopenRequest struct {
	f    *os.File
	done chan error
}

// ErrClosed is returned by Reopen after Close.
var ErrClosed = errors.New("accesslog: closed")

// Reopen opens the Writer's file path again and switches to the new file, as
// logrotate's postrotate asks with SIGUSR1 after moving the file away. Lines
// Log accepted before the switch go to the old file, which is then closed;
// no line is lost. A Writer on stdout, stderr or a caller's io.Writer has
// nothing to reopen and returns nil. On error the Writer keeps its file.
func (w *Writer) Reopen() error {
	if w.path == "" {
		return nil
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("accesslog: reopening: %w", err)
	}
	req := reopenRequest{f: f, done: make(chan error, 1)}
	select {
	case w.reopen <- req:
	case <-w.done:
		f.Close()
		return ErrClosed
	}
	w.signal()
	select {
	case err := <-req.done:
		return err
	case <-w.done:
	}
	select {
	case err := <-req.done: // switched before the writer stopped; Close closed it
		return err
	default:
	}
	select {
	case r := <-w.reopen: // the writer stopped first: take the file back
		r.f.Close()
	default:
	}
	return ErrClosed
}

// applyReopen runs on the writer goroutine: it writes the batch to the old
// file, closes it and continues on the new one.
func (w *Writer) applyReopen() {
	select {
	case req := <-w.reopen:
		w.flush()
		var err error
		if w.closer != nil {
			if cerr := w.closer.Close(); cerr != nil {
				err = fmt.Errorf("accesslog: closing the old file: %w", cerr)
			}
		}
		w.out, w.closer = req.f, req.f
		req.done <- err
	default:
	}
}
