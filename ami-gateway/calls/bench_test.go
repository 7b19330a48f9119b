package calls

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
)

// longStream is every Asterisk 22 recording, copies times over with fresh ids, interleaved so
// that len(files)*copies calls are in progress together.
func longStream(b *testing.B, copies int) (*Correlator, []*ami.Message) {
	b.Helper()
	dir := filepath.Join(fixtures, "ami-asterisk22")
	pbx, cls := loadReplayConfig(b, filepath.Join(dir, "replay.yaml"))
	cl, err := NewClassifier(cls)
	if err != nil {
		b.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.ami"))
	var streams [][]*ami.Message
	for fi, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		for n := 0; n < copies; n++ {
			streams = append(streams, parseAll(b, fresh(raw, fi*copies+n)))
		}
	}
	return New(Options{PBX: pbx}, cl), interleave(streams)
}

func reset(c *Correlator) *Correlator { return New(c.opt, c.cl) }

// BenchmarkCorrelate: call events from parsed AMI events, the correlator alone.
func BenchmarkCorrelate(b *testing.B) {
	c, msgs := longStream(b, 20)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c = reset(c)
		for _, m := range msgs {
			c.Handle(m)
		}
	}
	b.ReportMetric(float64(len(msgs)*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkParseCorrelate: the gateway's hot path, AMI bytes in, call events out, on one core.
func BenchmarkParseCorrelate(b *testing.B) {
	c, msgs := longStream(b, 20)
	var raw bytes.Buffer
	for _, m := range msgs {
		raw.WriteString(m.String())
	}
	b.SetBytes(int64(raw.Len()))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c = reset(c)
		r := ami.NewReader(bytes.NewReader(raw.Bytes()), ami.ReaderOptions{})
		for {
			m, err := r.ReadMessage()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			c.Handle(m)
		}
	}
	b.ReportMetric(float64(len(msgs)*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkThousandCalls reports the heap the correlator holds with 1,000 calls in progress.
func BenchmarkThousandCalls(b *testing.B) {
	var heap float64
	for i := 0; i < b.N; i++ {
		c, msgs := longStream(b, 67) // 15 recordings x 67 = 1005 calls
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		maxOpen := 0
		for j, m := range msgs {
			c.Handle(m)
			if j%1000 == 0 && c.Calls() > maxOpen {
				maxOpen = c.Calls()
			}
			if c.Calls() >= 1000 {
				break
			}
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if c.Calls() < 1000 {
			b.Fatalf("only %d calls open at once (max %d)", c.Calls(), maxOpen)
		}
		heap = float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
		runtime.KeepAlive(msgs)
	}
	b.ReportMetric(heap, "MB-heap/1000-calls")
}
