package calls

import (
	"os"
	"strings"
	"testing"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
)

// readStream splits a recorded AMI stream into messages.
func readStream(t testing.TB, path string) []*ami.Message {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "\r\n", "\n")
	var out []*ami.Message
	for _, pkt := range strings.Split(s, "\n\n") {
		m := &ami.Message{}
		for _, line := range strings.Split(pkt, "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			m.Add(k, strings.TrimLeft(v, " "))
		}
		if len(m.Headers) > 0 {
			out = append(out, m)
		}
	}
	return out
}
