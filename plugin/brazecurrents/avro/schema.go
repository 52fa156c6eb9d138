package avro

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/linkedin/goavro/v2"
)

// kind is an Avro type as the transcoder sees it: logical types decode as
// their underlying type.
type kind uint8

const (
	kindNull kind = iota
	kindBoolean
	kindInt
	kindLong
	kindFloat
	kindDouble
	kindBytes
	kindString
	kindRecord
	kindEnum
	kindArray
	kindMap
	kindUnion
	kindFixed
)

// node is one compiled schema type. Records keep their fields' JSON keys
// pre-encoded so that the hot loop only appends bytes.
type node struct {
	kind     kind
	fields   []field  // record
	symbols  []string // enum
	items    *node    // array items, map values
	branches []*node  // union
	size     int      // fixed
}

type field struct {
	name string
	key  []byte // `"name":`, with a leading comma for every field but the first
	node *node
}

// Schema is a compiled writer schema, checked to be a Currents event's.
type Schema struct {
	root     *node
	fullName string // the top-level record's full name, e.g. dataexport.S3.inner.users.messages.email.Send
	keyBytes int    // JSON bytes a record adds beyond its Avro bytes, roughly: sizes output buffers
}

// EventType is the Currents event type named by the schema: everything after
// ".inner." in the record's full name, or "" when the name has no such part.
func (p *Schema) EventType() string {
	if _, after, ok := strings.Cut(p.fullName, ".inner."); ok {
		return after
	}
	return ""
}

// compileSchema validates a writer schema with goavro (the reference for what
// is a legal schema) and compiles it for the transcoder.
func compileSchema(schema []byte) (*Schema, error) {
	if _, err := goavro.NewCodec(string(schema)); err != nil {
		return nil, fmt.Errorf("invalid writer schema: %w", err)
	}
	var raw any
	if err := json.Unmarshal(schema, &raw); err != nil {
		return nil, fmt.Errorf("invalid writer schema: %w", err)
	}
	c := compiler{named: map[string]*node{}}
	root, err := c.compile(raw, "")
	if err != nil {
		return nil, fmt.Errorf("invalid writer schema: %w", err)
	}
	p := &Schema{root: root, fullName: c.firstName, keyBytes: 2}
	for _, f := range root.fields {
		p.keyBytes += len(f.key) + 4 // room for null and quotes
	}
	return p, p.checkCurrents()
}

// checkCurrents rejects valid Avro that is not a Currents event: such a
// file would be read silently into events no mapping understands.
func (p *Schema) checkCurrents() error {
	if p.root.kind != kindRecord {
		return errors.New("schema is not a record: not a Currents event schema")
	}
	var why []string
	if p.EventType() == "" {
		why = append(why, `no ".inner." event type`)
	}
	// id is a string and time an int or long (either maybe nullable), so
	// every record takes bytes: records of none would let a block of a few
	// bytes claim thousands of events.
	for _, want := range []struct {
		name  string
		kinds []kind
		what  string
	}{{"id", []kind{kindString}, "a string"}, {"time", []kind{kindInt, kindLong}, "an int or long"}} {
		i := slices.IndexFunc(p.root.fields, func(f field) bool { return f.name == want.name })
		switch {
		case i < 0:
			why = append(why, fmt.Sprintf("no %q field", want.name))
		case !hasKind(p.root.fields[i].node, want.kinds):
			why = append(why, fmt.Sprintf("%q is not %s", want.name, want.what))
		}
	}
	if len(why) > 0 {
		return fmt.Errorf("schema %q is not a Currents event schema: %s", p.fullName, strings.Join(why, "; "))
	}
	return nil
}

// hasKind reports whether n is of one of kinds, or a union with a branch
// of one.
func hasKind(n *node, kinds []kind) bool {
	if n.kind == kindUnion {
		return slices.ContainsFunc(n.branches, func(b *node) bool { return slices.Contains(kinds, b.kind) })
	}
	return slices.Contains(kinds, n.kind)
}

// SchemaCache keeps compiled schemas by their text: the files of one event
// type share a schema, and validating it costs far more than a lookup. It
// is safe for concurrent use.
type SchemaCache struct {
	mu       sync.Mutex
	programs map[string]*Schema
	bytes    int // schema text held
}

// The cache is emptied when it would pass either bound. Currents has about a
// hundred event types, a schema version a month and schemas under 10 KB, so
// this is rarely reached; the byte bound keeps hostile schemas, each up to
// MaxHeaderBytes, from piling up.
const (
	maxCachedPrograms    = 1024
	maxCachedSchemaBytes = 4 << 20
)

// NewSchemaCache returns an empty cache.
func NewSchemaCache() *SchemaCache {
	return &SchemaCache{programs: map[string]*Schema{}}
}

// Get returns the compiled form of a writer schema's text, compiling it
// unless cached. The error says why a schema is invalid or not a Currents
// event schema.
func (c *SchemaCache) Get(schema []byte) (*Schema, error) {
	c.mu.Lock()
	p, ok := c.programs[string(schema)]
	c.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := compileSchema(schema)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.programs) >= maxCachedPrograms || c.bytes+len(schema) > maxCachedSchemaBytes {
		clear(c.programs)
		c.bytes = 0
	}
	c.programs[string(schema)] = p
	c.bytes += len(schema)
	c.mu.Unlock()
	return p, nil
}

type compiler struct {
	named     map[string]*node
	firstName string
}

func (c *compiler) compile(s any, namespace string) (*node, error) {
	switch t := s.(type) {
	case string:
		return c.compileName(t, namespace)
	case []any:
		u := &node{kind: kindUnion}
		for _, b := range t {
			n, err := c.compile(b, namespace)
			if err != nil {
				return nil, err
			}
			u.branches = append(u.branches, n)
		}
		return u, nil
	case map[string]any:
		return c.compileObject(t, namespace)
	}
	return nil, fmt.Errorf("unexpected schema element %v", s)
}

var primitives = map[string]kind{
	"null": kindNull, "boolean": kindBoolean, "int": kindInt, "long": kindLong,
	"float": kindFloat, "double": kindDouble, "bytes": kindBytes, "string": kindString,
}

func (c *compiler) compileName(name, namespace string) (*node, error) {
	if k, ok := primitives[name]; ok {
		return &node{kind: k}, nil
	}
	if n, ok := c.named[fullName(name, namespace)]; ok {
		return n, nil
	}
	if n, ok := c.named[name]; ok {
		return n, nil
	}
	return nil, fmt.Errorf("unknown type %q", name)
}

func (c *compiler) compileObject(o map[string]any, namespace string) (*node, error) {
	typ, _ := o["type"].(string)
	if typ == "" {
		// {"type": {...}} or {"type": [...]} wraps another schema.
		return c.compile(o["type"], namespace)
	}
	switch typ {
	case "record", "error", "enum", "fixed":
	case "array":
		items, err := c.compile(o["items"], namespace)
		return &node{kind: kindArray, items: items}, err
	case "map":
		values, err := c.compile(o["values"], namespace)
		return &node{kind: kindMap, items: values}, err
	default:
		return c.compileName(typ, namespace)
	}

	name, _ := o["name"].(string)
	if ns, ok := o["namespace"].(string); ok && !strings.Contains(name, ".") {
		namespace = ns
	}
	full := fullName(name, namespace)
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		namespace = full[:i]
	}
	n := &node{}
	c.named[full] = n // registered before the fields so records can refer to themselves
	if c.firstName == "" {
		c.firstName = full
	}
	switch typ {
	case "enum":
		n.kind = kindEnum
		symbols, _ := o["symbols"].([]any)
		for _, s := range symbols {
			sym, _ := s.(string)
			n.symbols = append(n.symbols, sym)
		}
	case "fixed":
		n.kind = kindFixed
		n.size = fixedSize(o["size"])
	default:
		n.kind = kindRecord
		fields, _ := o["fields"].([]any)
		for i, f := range fields {
			fo, ok := f.(map[string]any)
			if !ok {
				return nil, errors.New("record field is not an object")
			}
			fn, err := c.compile(fo["type"], namespace)
			if err != nil {
				return nil, err
			}
			fieldName, _ := fo["name"].(string)
			key := appendJSONString(nil, fieldName)
			if i > 0 {
				key = append([]byte{','}, key...)
			}
			n.fields = append(n.fields, field{name: fieldName, key: append(key, ':'), node: fn})
		}
	}
	return n, nil
}

// fixedSize reads a fixed's size as goavro does, a positive number or a
// string of digits. A size no block can hold becomes one over the limit,
// so that a value of it fails as running past its block.
func fixedSize(v any) int {
	size, _ := v.(float64)
	if s, ok := v.(string); ok {
		size, _ = strconv.ParseFloat(s, 64)
	}
	return int(min(size, MaxBlockBytes+1))
}

func fullName(name, namespace string) string {
	if strings.Contains(name, ".") || namespace == "" {
		return name
	}
	return namespace + "." + name
}
