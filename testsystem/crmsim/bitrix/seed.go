package bitrix

import (
	"fmt"
	"os"

	"gopkg.in/yaml.v3"
)

// ParseOptions reads Options from YAML or JSON (JSON is YAML): the portal's users, CRM, lines,
// webhooks and limits, for the CLI and the runner. Durations are written as "30m", "1h".
//
//	users:
//	  - {id: 1, name: Anna, last_name: Petrova, phone_inner: "101", admin: true}
//	  - {id: 2, name: Oleg, phone_inner: "102", inactive: true}
//	contacts:
//	  - {id: 10, name: Ivan, phones: ["+79161234567"], assigned_by_id: 1}
//	lines: [{number: "74951234567", name: Main}]
//	rate_burst: 50
//	access_token_ttl: 1h
func ParseOptions(data []byte) (Options, error) {
	var o Options
	if err := yaml.Unmarshal(data, &o); err != nil {
		return Options{}, fmt.Errorf("bitrix: options: %w", err)
	}
	return o, nil
}

// LoadOptions reads Options from a YAML or JSON file.
func LoadOptions(path string) (Options, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Options{}, fmt.Errorf("bitrix: options: %w", err)
	}
	o, err := ParseOptions(b)
	if err != nil {
		return Options{}, fmt.Errorf("%s: %w", path, err)
	}
	return o, nil
}
