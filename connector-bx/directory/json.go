package directory

import "encoding/json"

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func unmarshalJSON(s string, v any) error { return json.Unmarshal([]byte(s), v) }
