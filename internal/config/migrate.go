package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// A migration turns the node tree of a file at schema n into schema n+1. It works on yaml.v3 nodes
// rather than structs so that comments and key order survive. The runner sets the schema key after
// each step; a migration only moves the settings.
type migration struct {
	from  int
	what  string
	apply func(doc *yaml.Node) (*yaml.Node, error)
}

// migrations lists every step, in order: migrations()[n] takes schema n to n+1. A release that
// changes the schema bumps Version and appends one step; none is ever removed, so a file of any age
// can be brought forward.
func migrations() []migration {
	return []migration{
		{from: 0, what: "adds the schema key; ami.password becomes ami.secret", apply: migrateV0toV1},
	}
}

// renamedKeys names the keys an earlier schema had under another name, so that an old key in a
// current file gets a message saying where it went rather than a guess.
func renamedKeys() map[string]string {
	return map[string]string{"ami.password": "ami.secret (since schema 1)"}
}

// NewerSchemaError is a file written by a newer ringbridge than this build: after a rollback that
// did not restore the config, for instance.
type NewerSchemaError struct{ Schema int }

func (e *NewerSchemaError) Error() string {
	return fmt.Sprintf("config schema %d is newer than this build knows (%d): update ringbridge, or restore the backup the update made", e.Schema, Version)
}

// Migrate brings a config file's bytes to schema Version. It returns the new bytes (raw itself,
// untouched, when the file is already current), the schema it was in and the schema it is in now.
func Migrate(raw []byte) (out []byte, from, to int, err error) {
	doc, err := parseDocument(raw)
	if err != nil {
		return nil, 0, 0, err
	}
	from, err = migrateDocument(doc)
	if err != nil {
		return nil, from, from, err
	}
	if from == Version {
		return raw, from, Version, nil
	}
	out, err = encodeDocument(doc)
	if err != nil {
		return nil, from, from, fmt.Errorf("writing the migrated config: %w", err)
	}
	return out, from, Version, nil
}

// parseDocument reads exactly one YAML document whose root is a mapping. An empty file (or one of
// only comments) is an empty mapping.
func parseDocument(raw []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, yamlError(err)
	default:
		return nil, fmt.Errorf("config holds more than one YAML document (a --- line): keep one")
	}
	if doc.Kind == 0 {
		doc.Kind = yaml.DocumentNode
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		doc.Content = []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}
	}
	if root := doc.Content[0]; root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: config must be a mapping of sections (pbx: ..., ami: ...), got %s", root.Line, kindWord(root))
	}
	return &doc, nil
}

func yamlError(err error) error {
	return fmt.Errorf("config is not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
}

// migrateDocument runs every step from the document's schema to Version and returns that schema.
func migrateDocument(doc *yaml.Node) (int, error) {
	from, err := documentSchema(doc.Content[0])
	if err != nil {
		return 0, err
	}
	if from > Version {
		return from, &NewerSchemaError{Schema: from}
	}
	steps := migrations()
	for v := from; v < Version; v++ {
		if v >= len(steps) {
			return from, fmt.Errorf("this build has no migration from schema %d to %d", v, v+1)
		}
		step := steps[v]
		if step.from != v {
			return from, fmt.Errorf("migration list is out of order: step %d says it starts at %d", v, step.from)
		}
		next, err := step.apply(doc)
		if err != nil {
			return from, fmt.Errorf("migrating config from schema %d to %d (%s): %w", v, v+1, step.what, err)
		}
		doc = next
		setSchema(doc.Content[0], v+1)
	}
	return from, nil
}

// documentSchema reads the schema key; a file without one predates it: schema 0.
func documentSchema(root *yaml.Node) (int, error) {
	_, val := mappingValue(root, "schema")
	if val == nil || isNull(val) {
		return 0, nil
	}
	for val.Kind == yaml.AliasNode && val.Alias != nil {
		val = val.Alias
	}
	n, err := strconv.Atoi(val.Value)
	if val.Kind != yaml.ScalarNode || val.ShortTag() != "!!int" || err != nil || n < 0 {
		return 0, fmt.Errorf("line %d: schema: %s is not a schema version: write schema: %d", val.Line, kindWord(val), Version)
	}
	return n, nil
}

func setSchema(root *yaml.Node, v int) {
	val := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(v)}
	if k, old := mappingValue(root, "schema"); k != nil {
		val.LineComment = old.LineComment
		for i := 1; i < len(root.Content); i += 2 {
			if root.Content[i-1] == k {
				root.Content[i] = val
			}
		}
		return
	}
	// On top, where a reader looks for it. A file's header comment (one followed by a blank line)
	// belongs to the document and stays above it.
	key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "schema"}
	root.Content = append([]*yaml.Node{key, val}, root.Content...)
}

// mappingValue finds key in a mapping node and returns its key and value nodes.
func mappingValue(m *yaml.Node, key string) (k, v *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Kind == yaml.ScalarNode && m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

func encodeDocument(doc *yaml.Node) (out []byte, err error) {
	// yaml.v3's encoder panics on some trees it cannot write (a key that is a list, say); a
	// config from outside must give an error instead.
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("the YAML encoder failed: %v", r)
		}
	}()
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// migrateV0toV1: files from before the schema key kept the AMI secret under ami.password.
func migrateV0toV1(doc *yaml.Node) (*yaml.Node, error) {
	_, ami := mappingValue(doc.Content[0], "ami")
	for ami != nil && ami.Kind == yaml.AliasNode {
		ami = ami.Alias
	}
	pk, pv := mappingValue(ami, "password")
	if pk == nil {
		return doc, nil
	}
	if sk, sv := mappingValue(ami, "secret"); sk != nil {
		if pv.Kind == yaml.ScalarNode && sv.Kind == yaml.ScalarNode && pv.Value == sv.Value {
			removeKey(ami, pk)
			return doc, nil
		}
		return nil, fmt.Errorf("line %d: ami has both password (the old name) and secret, with different values: keep secret and remove password", pk.Line)
	}
	pk.Value = "secret"
	return doc, nil
}

func removeKey(m, key *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i] == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}
