package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads and validates the YAML file at path. A file that cannot be read
// gives an error wrapping the os error; an invalid file gives the problems of
// Parse, which do not repeat the path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data)
}

// Parse decodes and validates a YAML configuration, fills in the defaults and
// returns it. On failure it returns every problem found, joined with
// errors.Join, each one an *Error, sorted by line.
func Parse(data []byte) (*Config, error) {
	root, perr := parseYAML(data)
	if perr != nil {
		return nil, errors.Join(perr)
	}
	var d decoder
	c := d.config(root)
	if len(d.errs) > 0 {
		return nil, d.err()
	}
	return c, nil
}

// parseYAML returns the top-level node of the single document in data.
func parseYAML(data []byte) (root *yaml.Node, err *Error) {
	defer func() {
		// Parse must not panic whatever the input; should the YAML
		// library ever panic on hostile input, report it as an error.
		if r := recover(); r != nil {
			root, err = nil, &Error{Msg: fmt.Sprintf("invalid YAML: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if e := dec.Decode(&doc); e != nil {
		if errors.Is(e, io.EOF) {
			return nil, &Error{Msg: "empty file"}
		}
		return nil, syntaxError(e, data)
	}
	var next yaml.Node
	switch e := dec.Decode(&next); {
	case errors.Is(e, io.EOF):
	case e != nil:
		return nil, syntaxError(e, data)
	default:
		return nil, &Error{Line: next.Line, Msg: "more than one YAML document"}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, &Error{Msg: "empty file"}
	}
	return doc.Content[0], nil
}

// syntaxError turns a YAML library error such as "yaml: line 3: could not
// find expected ':'" into an *Error that carries the line.
func syntaxError(err error, data []byte) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, tail, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, tail
			}
		}
	}
	switch {
	case parserErrors[msg]:
		// The library reports the 0-based line of a parser (not scanner)
		// error, and none at all for line 0; at end of input it may point
		// one past the last line.
		line = min(line+1, countLines(data))
	case line == 0 && scannerError(msg):
		// Scanner errors are 1-based, but the library drops line 1.
		line = 1
	}
	return &Error{Line: line, Msg: "invalid YAML: " + msg}
}

// parserErrors are the messages of the YAML parser proper, whose line the
// library reports 0-based.
var parserErrors = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found undefined tag handle":             true,
	"found duplicate %YAML directive":        true,
	"found duplicate %TAG directive":         true,
	"found incompatible YAML document":       true,
}

// scannerError reports whether msg is one of the YAML scanner's messages,
// which all have a position.
func scannerError(msg string) bool {
	return strings.HasPrefix(msg, "found ") || strings.HasPrefix(msg, "did not find ") ||
		strings.HasPrefix(msg, "could not find ") || strings.HasSuffix(msg, "not allowed in this context")
}

func countLines(data []byte) int {
	n := bytes.Count(data, []byte("\n"))
	if len(data) > 0 && data[len(data)-1] != '\n' {
		n++
	}
	return max(n, 1)
}

// err joins the collected problems, sorted by line with the ones without a
// line last.
func (d *decoder) err() error {
	slices.SortStableFunc(d.errs, func(a, b *Error) int {
		return cmp.Compare(lineKey(a.Line), lineKey(b.Line))
	})
	errs := make([]error, len(d.errs))
	for i, e := range d.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

func lineKey(line int) int {
	if line <= 0 {
		return math.MaxInt
	}
	return line
}
