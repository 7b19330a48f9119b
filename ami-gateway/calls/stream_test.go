package calls

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
)

// readStream reads a recorded AMI stream with the gateway's own reader.
func readStream(t testing.TB, path string) []*ami.Message {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseAll(t, b)
}

func parseAll(t testing.TB, b []byte) []*ami.Message {
	t.Helper()
	r := ami.NewReader(bytes.NewReader(b), ami.ReaderOptions{})
	var out []*ami.Message
	for {
		m, err := r.ReadMessage()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read recording: %v", err)
		}
		out = append(out, m)
	}
}

var (
	uidRe    = regexp.MustCompile(`\b(\d{10})\.(\d+)\b`)
	chanRe   = regexp.MustCompile(`-[0-9a-f]{8}\b`)
	bridgeRe = regexp.MustCompile(`\b[0-9a-f]{8}(-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b`)
)

// fresh gives a recording new Uniqueids, channel names and bridge ids, so copy n of it is a
// different call that can overlap the others.
func fresh(raw []byte, n int) []byte {
	out := uidRe.ReplaceAllFunc(raw, func(m []byte) []byte {
		s := uidRe.FindSubmatch(m)
		seq, _ := strconv.Atoi(string(s[2]))
		return []byte(fmt.Sprintf("%s.%d%06d", s[1], n+1, seq))
	})
	out = chanRe.ReplaceAllFunc(out, func(m []byte) []byte {
		return []byte(fmt.Sprintf("-%04x%s", n&0xffff, m[5:]))
	})
	return bridgeRe.ReplaceAllFunc(out, func(m []byte) []byte {
		return []byte(fmt.Sprintf("%08x%s", n, m[8:]))
	})
}

// interleave merges streams packet by packet, round robin: every call overlaps every other.
func interleave(streams [][]*ami.Message) []*ami.Message {
	var out []*ami.Message
	for i := 0; ; i++ {
		more := false
		for _, s := range streams {
			if i < len(s) {
				out = append(out, s[i])
				more = true
			}
		}
		if !more {
			return out
		}
	}
}
