package ami

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"
)

// FuzzParse feeds arbitrary bytes to the Reader. It must not panic, must end (every call makes
// progress), may only fail with *ParseError, and every packet it returns must survive
// Message.String() and a second parse unchanged.
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 5m ./ami-gateway/ami
func FuzzParse(f *testing.F) {
	// Seeds: the real recordings cut into chunks of a few packets, plus edge cases.
	for _, fx := range fixtures(f) {
		for _, chunk := range chunkPackets(fx.data, 4096) {
			f.Add(chunk)
		}
	}
	for _, s := range []string{
		"",
		"\r\n",
		"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nMessage: Authentication accepted\r\n\r\n",
		"Event: A\nAccountCode:\nX: y\n\n",
		"Response: Follows\r\nPrivilege: Command\r\nActionID: 1\r\nout\n\nmore\n--END COMMAND--\r\n\r\n",
		"Response: Follows\r\nActionID: 1\r\nx--END COMMAND--\r\n\r\n",
		"Event: A\r\nno colon\r\n\r\nEvent: B\r\n\r\n",
		"Event: A\r\n\x00\xff: z\r\n\r\n",
		"Event: A\r\nB: c",
		"Event: Newexten\r\nEvent: DialEnd\r\n\r\n",
		"Event: UserEvent\r\nEvent: x\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs := fuzzStream(t, bytes.NewReader(data), ReaderOptions{}, len(data))
		for _, m := range msgs {
			checkRoundTrip(t, m)
		}
		// One-byte reads into a tiny buffer (grow and compact paths) give the same packets.
		oneByte := fuzzStream(t, iotest.OneByteReader(bytes.NewReader(data)), ReaderOptions{BufferSize: 16}, len(data))
		if !sameMessages(msgs, oneByte) {
			t.Fatalf("one-byte reads differ from whole reads for %q", data)
		}
		// Tiny limits drive the overlong line and packet paths.
		fuzzStream(t, iotest.HalfReader(bytes.NewReader(data)), ReaderOptions{MaxLineSize: 40, MaxPacketSize: 120, BufferSize: 16}, len(data))
	})
}

// fuzzStream reads everything and checks the invariants of each packet.
func fuzzStream(t *testing.T, r io.Reader, opt ReaderOptions, n int) []*Message {
	rd := NewReader(r, opt)
	var msgs []*Message
	for i := 0; ; i++ {
		if i > 2*n+10 {
			t.Fatalf("no progress after %d calls on %d bytes", i, n)
		}
		m, err := rd.ReadMessage()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error is not a *ParseError: %T %v", err, err)
			}
			_ = pe.Error()
			continue
		}
		if len(m.Headers) == 0 {
			t.Fatal("packet without headers")
		}
		for _, h := range m.Headers {
			if h.Key == "" || strings.ContainsAny(h.Key, ":\r\n") || strings.Contains(h.Value, "\n") {
				t.Fatalf("bad header %q", h)
			}
		}
		if m.Output != "" && !m.isFollows() {
			t.Fatalf("Output on a non-Follows packet %q", m.Headers)
		}
		msgs = append(msgs, m)
	}
	if st := rd.Stats(); st.Packets != uint64(len(msgs)) || st.Bytes != uint64(n) {
		t.Fatalf("stats %+v for %d packets, %d bytes", st, len(msgs), n)
	}
	return msgs
}

func checkRoundTrip(t *testing.T, m *Message) {
	t.Helper()
	s := m.String()
	rd := NewReader(strings.NewReader(s), ReaderOptions{})
	again, err := rd.ReadMessage()
	if err != nil {
		t.Fatalf("re-parse of %q: %v", s, err)
	}
	if !sameMessage(m, again) {
		t.Fatalf("round trip changed the packet:\n before %q %q\n after  %q %q", m.Headers, m.Output, again.Headers, again.Output)
	}
	if extra, err := rd.ReadMessage(); err != io.EOF {
		t.Fatalf("round trip of %q left more: %v %v", s, extra, err)
	}
}

// chunkPackets cuts data at packet boundaries into pieces of about size bytes.
func chunkPackets(data []byte, size int) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		if len(data) <= size {
			out = append(out, data)
			break
		}
		i := bytes.Index(data[size:], []byte("\r\n\r\n"))
		if i < 0 {
			out = append(out, data)
			break
		}
		cut := size + i + 4
		out = append(out, data[:cut])
		data = data[cut:]
	}
	return out
}

// corpus is every recording back to back (banners included, as `record` files of several
// sessions would be).
func corpus(tb testing.TB) (data []byte, events int) {
	for _, fx := range fixtures(tb) {
		data = append(data, fx.data...)
		events += countPrefixLines(fx.data, "Event:")
	}
	return data, events
}

// BenchmarkParse parses all real recordings (Asterisk 22 and 13, ~1.3 MB, ~3,800 events) per
// iteration and reports events/s of wall time, events per second of process CPU time (user+sys,
// GC included; steadier than wall time on a shared machine) and allocations per packet.
func BenchmarkParse(b *testing.B) {
	data, _ := corpus(b)
	br := bytes.NewReader(data)
	var events, packets int
	var ms0, ms1 runtime.MemStats
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuTime()
	start := time.Now()
	for b.Loop() {
		br.Reset(data)
		rd := NewReader(br, ReaderOptions{})
		for {
			m, err := rd.ReadMessage()
			if err != nil {
				if err != io.EOF {
					b.Fatal(err)
				}
				break
			}
			packets++
			if len(m.Headers) > 0 && isKeyString(m.Headers[0].Key, "Event") {
				events++
			}
		}
	}
	el := time.Since(start)
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(events)/el.Seconds(), "events/s")
	if cpu > 0 {
		b.ReportMetric(float64(events)/cpu.Seconds(), "events/cpu-s")
	}
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(packets), "allocs/packet")
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkClientEvents measures the whole receive path of the Client: a server on loopback TCP
// writes the real recordings (without their banners and login replies) as fast as it can, and the
// consumer takes the events off Client.Events.
func BenchmarkClientEvents(b *testing.B) {
	var stream []byte
	events := 0
	for _, fx := range fixtures(b) {
		rd := NewReader(bytes.NewReader(fx.data), ReaderOptions{})
		for {
			m, err := rd.ReadMessage()
			if err != nil {
				break
			}
			if m.Event() != "" {
				stream = m.AppendWire(stream)
				events++
			}
		}
	}
	srv := newFakeAMI(b)
	cfg, _, _ := testConfig(srv)
	cfg.Logger = nil
	cfg.EventBuffer = 100000
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	fc := <-srv.authed
	for ev := range c.Events() { // Connected, FullyBooted
		if ev.Msg != nil {
			break
		}
	}
	b.SetBytes(int64(len(stream)))
	b.ResetTimer()
	start := time.Now()
	go func() {
		for range b.N {
			_ = fc.c.SetWriteDeadline(time.Time{})
			if _, err := fc.c.Write(stream); err != nil {
				return
			}
		}
	}()
	want := b.N * events
	for got := 0; got < want; {
		ev := <-c.Events()
		if ev.Msg == nil {
			b.Fatalf("connection state changed: %+v", ev.State)
		}
		got++
	}
	b.ReportMetric(float64(want)/time.Since(start).Seconds(), "events/s")
}
