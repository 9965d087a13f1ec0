package config

import (
	"fmt"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder walks a yaml.Node tree, fills a Config and collects every problem
// with its key path and line. It is used by one goroutine for one Parse.
type decoder struct {
	errs []*Error
	// mappings counts the mappings decoded, to bound what aliases can
	// expand to.
	mappings int

	// Nodes kept for the checks that span sections, run after the walk.
	listens []located // listen addresses; node nil for the default
	admin   *yaml.Node
	routes  []located // routes[i].upstream values
}

// located is a decoded string with where it came from.
type located struct {
	path  string
	value string
	node  *yaml.Node
}

// maxMappings bounds the mappings one file may expand to through aliases;
// a large real file has a few thousand.
const maxMappings = 100_000

// handler decodes the value v found at path.
type handler func(path string, v *yaml.Node)

// fields maps the known keys of a mapping to their handlers.
type fields map[string]handler

// entry is one key/value pair of a mapping.
type entry struct {
	key     string
	keyNode *yaml.Node
	val     *yaml.Node
}

func (d *decoder) add(path string, n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, &Error{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// mapping decodes the mapping n at path, calling one handler per key. A key
// with a null value counts as absent. Unknown keys are errors. It returns the
// value nodes of the keys present, or nil when n is not a mapping.
func (d *decoder) mapping(path string, n *yaml.Node, fs fields) map[string]*yaml.Node {
	if d.mappings++; d.mappings > maxMappings {
		if d.mappings == maxMappings+1 {
			d.add(path, n, "too many mappings (more than %d): do aliases repeat too much?", maxMappings)
		}
		return nil
	}
	es := d.entries(path, n)
	if es == nil {
		return nil
	}
	present := make(map[string]*yaml.Node, len(es))
	for _, e := range es {
		p := join(path, e.key)
		h, ok := fs[e.key]
		if !ok {
			d.add(p, e.keyNode, "unknown key")
			continue
		}
		v := resolve(e.val)
		if isNull(v) {
			continue
		}
		present[e.key] = v
		h(p, v)
	}
	return present
}

// entries returns the pairs of the mapping n in document order, followed by
// those merged in with "<<" that the mapping does not override. Duplicate keys
// are errors. It returns nil (after reporting) when n is not a mapping.
func (d *decoder) entries(path string, n *yaml.Node) []entry {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		d.add(path, n, "want a mapping, got %s", kind(n))
		return nil
	}
	out := []entry{}
	seen := map[string]bool{}
	visited := map[*yaml.Node]bool{}
	d.collect(path, n, &out, seen, visited, true)
	return out
}

// collect appends the pairs of mapping n not yet seen, then those of its
// merge sources. Each mapping is visited once, so cyclic or repeated merges
// terminate and cost linear time.
func (d *decoder) collect(path string, n *yaml.Node, out *[]entry, seen map[string]bool, visited map[*yaml.Node]bool, top bool) {
	if visited[n] {
		return
	}
	visited[n] = true
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		switch {
		case k.Kind == yaml.ScalarNode && k.Tag == "!!merge":
			merges = append(merges, v)
			continue
		case k.Kind != yaml.ScalarNode:
			if top {
				d.add(path, k, "want a string key, got %s", kind(k))
			}
			continue
		case seen[k.Value]:
			if top {
				d.add(join(path, k.Value), k, "duplicate key")
			}
			continue
		}
		seen[k.Value] = true
		*out = append(*out, entry{key: k.Value, keyNode: k, val: v})
	}
	for _, m := range merges {
		d.merge(path, m, out, seen, visited)
	}
}

// merge expands one "<<" value: a mapping or a list of mappings.
func (d *decoder) merge(path string, m *yaml.Node, out *[]entry, seen map[string]bool, visited map[*yaml.Node]bool) {
	m = resolve(m)
	sources := []*yaml.Node{m}
	if m.Kind == yaml.SequenceNode {
		sources = m.Content
	}
	for _, s := range sources {
		s = resolve(s)
		if s.Kind != yaml.MappingNode {
			d.add(join(path, "<<"), s, "want a mapping to merge, got %s", kind(s))
			continue
		}
		d.collect(path, s, out, seen, visited, false)
	}
}

// sequence returns the items of the list n, or ok false (after reporting)
// when n is not a list.
func (d *decoder) sequence(path string, n *yaml.Node) (items []*yaml.Node, ok bool) {
	if n.Kind != yaml.SequenceNode {
		d.add(path, n, "want a list, got %s", kind(n))
		return nil, false
	}
	items = make([]*yaml.Node, len(n.Content))
	for i, it := range n.Content {
		items[i] = resolve(it)
	}
	return items, true
}

// field returns a handler that parses a scalar with parse, runs the checks
// and stores the value in dst. On any problem dst keeps its value.
func field[T any](d *decoder, dst *T, what string, parse func(*yaml.Node) (T, error), checks ...func(T) string) handler {
	return func(path string, n *yaml.Node) {
		if n.Kind != yaml.ScalarNode {
			d.add(path, n, "want %s, got %s", what, kind(n))
			return
		}
		v, err := parse(n)
		if err != nil {
			d.add(path, n, "%v", err)
			return
		}
		for _, check := range checks {
			if msg := check(v); msg != "" {
				d.add(path, n, "%s", msg)
				return
			}
		}
		*dst = v
	}
}

func (d *decoder) str(dst *string, checks ...func(string) string) handler {
	return field(d, dst, "a string", func(n *yaml.Node) (string, error) { return n.Value, nil }, checks...)
}

func (d *decoder) integer(dst *int, checks ...func(int) string) handler {
	return field(d, dst, "an integer", parseIntNode, checks...)
}

func (d *decoder) duration(dst *time.Duration, checks ...func(time.Duration) string) handler {
	return field(d, dst, "a duration", func(n *yaml.Node) (time.Duration, error) { return parseDuration(n.Value) }, checks...)
}

func (d *decoder) size(dst *int, checks ...func(int) string) handler {
	return field(d, dst, "a size", func(n *yaml.Node) (int, error) { return parseSize(n.Value) }, checks...)
}

// parseIntNode accepts a YAML integer (decimal, 0x, 0o, 0b, with _) that
// fits an int.
func parseIntNode(n *yaml.Node) (int, error) {
	var v int
	if n.Tag != "!!int" || n.Decode(&v) != nil {
		return 0, fmt.Errorf("not an integer: %q", n.Value)
	}
	return v, nil
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; i < 16 && n.Kind == yaml.AliasNode && n.Alias != nil; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// kind names what n is, for messages.
func kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "nothing"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		default:
			return "a string"
		}
	default:
		return "an unexpected node"
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// boolean decodes true or false.
func (d *decoder) boolean(dst *bool) handler {
	return field(d, dst, "true or false", func(n *yaml.Node) (bool, error) {
		var v bool
		if n.Tag != "!!bool" || n.Decode(&v) != nil {
			return false, fmt.Errorf("not a boolean: %q: want true or false", n.Value)
		}
		return v, nil
	})
}
