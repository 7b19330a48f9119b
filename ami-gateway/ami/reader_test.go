package ami

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"testing/iotest"
)

// fixtureDirs finds shared/fixtures/ami-* by walking up from the package directory (the repository
// sits next to shared/ on developer machines and in CI). AMI_FIXTURES overrides.
func fixtureRoot(tb testing.TB) string {
	tb.Helper()
	if d := os.Getenv("AMI_FIXTURES"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		for _, cand := range []string{filepath.Join(dir, "shared", "fixtures"), filepath.Join(dir, "..", "shared", "fixtures")} {
			if st, err := os.Stat(filepath.Join(cand, "ami-asterisk22")); err == nil && st.IsDir() {
				return cand
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("shared/fixtures/ami-asterisk22 not found above the package; set AMI_FIXTURES")
		}
		dir = parent
	}
}

type fixture struct {
	name string
	data []byte
}

func fixtures(tb testing.TB) []fixture {
	tb.Helper()
	root := fixtureRoot(tb)
	var files []string
	for _, sub := range []string{"ami-asterisk22", "ami-public"} {
		m, err := filepath.Glob(filepath.Join(root, sub, "*.ami"))
		if err != nil {
			tb.Fatal(err)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	if len(files) < 20 {
		tb.Fatalf("found only %d fixture files under %s", len(files), root)
	}
	var out []fixture
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, fixture{name: filepath.Base(filepath.Dir(f)) + "/" + filepath.Base(f), data: b})
	}
	return out
}

// countPrefixLines is `grep -c '^Prefix'`.
func countPrefixLines(data []byte, prefix string) int {
	n := 0
	for _, line := range bytes.Split(data, []byte("\n")) {
		if bytes.HasPrefix(line, []byte(prefix)) {
			n++
		}
	}
	return n
}

// countPacketsStartingWith counts blank-line separated chunks whose first line has prefix (a
// `Response:` line inside OriginateResponse is not a response packet).
func countPacketsStartingWith(data []byte, prefix string) int {
	n := 0
	for _, chunk := range bytes.Split(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")), []byte("\n\n")) {
		chunk = bytes.TrimLeft(chunk, "\n")
		if bytes.HasPrefix(chunk, []byte(BannerPrefix)) {
			chunk = chunk[bytes.IndexByte(chunk, '\n')+1:]
		}
		if bytes.HasPrefix(chunk, []byte(prefix)) {
			n++
		}
	}
	return n
}

// readAll parses data to the end and returns the messages and the errors met.
func readAll(t testing.TB, r io.Reader, opt ReaderOptions) ([]*Message, []error, *Reader) {
	t.Helper()
	rd := NewReader(r, opt)
	var msgs []*Message
	var errs []error
	for i := 0; ; i++ {
		if i > 1_000_000 {
			t.Fatal("reader does not make progress")
		}
		m, err := rd.ReadMessage()
		if err == io.EOF {
			return msgs, errs, rd
		}
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("non-parse error %T: %v", err, err)
			}
			errs = append(errs, err)
			continue
		}
		msgs = append(msgs, m)
	}
}

func TestReaderFixtures(t *testing.T) {
	// Known totals from the fixture READMEs, as a guard on the grep-style count.
	known := map[string]int{
		"ami-asterisk22/attended-transfer.ami":                       327,
		"ami-asterisk22/inbound-busy.ami":                            78,
		"ami-public/asterisk13-originate-click-to-dial-outbound.ami": 146,
		"ami-public/asterisk13-internal-missed-caller-cancel.ami":    29,
	}
	for _, fx := range fixtures(t) {
		t.Run(fx.name, func(t *testing.T) {
			wantEvents := countPrefixLines(fx.data, "Event:")
			wantResponses := countPacketsStartingWith(fx.data, "Response:")
			if k, ok := known[fx.name]; ok && k != wantEvents {
				t.Fatalf("grep count %d, README says %d", wantEvents, k)
			}
			msgs, errs, rd := readAll(t, bytes.NewReader(fx.data), ReaderOptions{})
			if len(errs) > 0 {
				t.Fatalf("parse errors: %v", errs)
			}
			events, responses := 0, 0
			for _, m := range msgs {
				switch {
				case m.Event() != "":
					events++
				case m.Response() != "":
					responses++
				default:
					t.Errorf("packet with neither Event nor Response: %q", m.String())
				}
				if len(m.Headers) == 0 {
					t.Fatal("empty packet")
				}
			}
			if events != wantEvents || responses != wantResponses {
				t.Fatalf("events %d responses %d, want %d and %d", events, responses, wantEvents, wantResponses)
			}
			st := rd.Stats()
			if st.Events != uint64(events) || st.Packets != uint64(len(msgs)) || st.Bytes != uint64(len(fx.data)) {
				t.Fatalf("stats %+v", st)
			}
			// The goami2 capture was pasted together from string literals and lost two blank
			// lines between events; the reader splits those packets and counts them.
			wantSplit := uint64(0)
			if fx.name == "ami-public/asterisk13-chansip-outbound-peer-answered.ami" {
				wantSplit = 2
			}
			if st.MissingBlankLine != wantSplit {
				t.Fatalf("MissingBlankLine = %d, want %d", st.MissingBlankLine, wantSplit)
			}
			if strings.HasPrefix(fx.name, "ami-asterisk22/") {
				if rd.Banner() != "Asterisk Call Manager/11.0.0" || st.Banners != 1 {
					t.Fatalf("banner %q (%d)", rd.Banner(), st.Banners)
				}
				// Sessions end with the Logoff reply.
				if last := msgs[len(msgs)-1]; last.Response() != "Goodbye" {
					t.Fatalf("last packet %q", last.String())
				}
			}

			// Line ends: the same stream with bare LF, and read one byte at a time.
			lf := bytes.ReplaceAll(fx.data, []byte("\r\n"), []byte("\n"))
			lfMsgs, lfErrs, _ := readAll(t, bytes.NewReader(lf), ReaderOptions{})
			oneMsgs, oneErrs, _ := readAll(t, iotest.OneByteReader(bytes.NewReader(fx.data)), ReaderOptions{BufferSize: 16})
			if len(lfErrs)+len(oneErrs) > 0 {
				t.Fatalf("errors LF %v, one-byte %v", lfErrs, oneErrs)
			}
			if !sameMessages(msgs, lfMsgs) {
				t.Fatal("LF stream parses differently from CRLF")
			}
			if !sameMessages(msgs, oneMsgs) {
				t.Fatal("one-byte reads parse differently")
			}
			// Round trip: rendering every packet and parsing it again gives the same packets.
			var buf bytes.Buffer
			for _, m := range msgs {
				buf.WriteString(m.String())
			}
			again, againErrs, _ := readAll(t, &buf, ReaderOptions{})
			if len(againErrs) > 0 || !sameMessages(msgs, again) {
				t.Fatalf("round trip differs (errors %v)", againErrs)
			}
		})
	}
}

func sameMessages(a, b []*Message) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameMessage(a[i], b[i]) {
			return false
		}
	}
	return true
}

func sameMessage(a, b *Message) bool {
	if a.Output != b.Output || len(a.Headers) != len(b.Headers) {
		return false
	}
	return len(a.Headers) == 0 || reflect.DeepEqual(a.Headers, b.Headers)
}

func hdrs(kv ...string) []Header {
	var h []Header
	for i := 0; i+1 < len(kv); i += 2 {
		h = append(h, Header{kv[i], kv[i+1]})
	}
	return h
}

func TestReaderCases(t *testing.T) {
	type want struct {
		headers []Header
		output  string
	}
	cases := []struct {
		name string
		in   string
		want []want
	}{
		{"crlf", "Event: A\r\nX: 1\r\n\r\n", []want{{hdrs("Event", "A", "X", "1"), ""}}},
		{"lf", "Event: A\nX: 1\n\n", []want{{hdrs("Event", "A", "X", "1"), ""}}},
		{"mixed line ends", "Event: A\nX: 1\r\n\nEvent: B\r\n\r\n", []want{{hdrs("Event", "A", "X", "1"), ""}, {hdrs("Event", "B"), ""}}},
		{"empty value with space", "Event: A\r\nAccountCode: \r\n\r\n", []want{{hdrs("Event", "A", "AccountCode", ""), ""}}},
		{"empty value without space", "Event: A\nAccountCode:\nX: y\n\n", []want{{hdrs("Event", "A", "AccountCode", "", "X", "y"), ""}}},
		{"no space after colon", "Event:A\r\n\r\n", []want{{hdrs("Event", "A"), ""}}},
		{"value keeps extra spaces and colons", "Event: A\r\nCallerIDName:  Bob: x \r\n\r\n", []want{{hdrs("Event", "A", "CallerIDName", " Bob: x "), ""}}},
		{"repeated keys kept in order", "Event: VarSet\r\nChanVariable: a=1\r\nChanVariable: b=2\r\nchanvariable: c=3\r\n\r\n",
			[]want{{hdrs("Event", "VarSet", "ChanVariable", "a=1", "ChanVariable", "b=2", "chanvariable", "c=3"), ""}}},
		{"blank lines and banner between packets", "\r\n\r\nAsterisk Call Manager/2.10.6\r\nEvent: A\r\n\r\n\r\n\nAsterisk Call Manager/11.0.0\nEvent: B\n\n",
			[]want{{hdrs("Event", "A"), ""}, {hdrs("Event", "B"), ""}}},
		{"utf8 value", "Event: A\r\nCallerIDName: Иван Петров\r\n\r\n", []want{{hdrs("Event", "A", "CallerIDName", "Иван Петров"), ""}}},
		{"new style command output is headers", "Response: Success\r\nActionID: 1\r\nMessage: Command output follows\r\nOutput: line one\r\nOutput: \r\nOutput: line: three\r\n\r\n",
			[]want{{hdrs("Response", "Success", "ActionID", "1", "Message", "Command output follows", "Output", "line one", "Output", "", "Output", "line: three"), ""}}},
		{"follows with blank lines", "Response: Follows\r\nPrivilege: Command\r\nActionID: 7\r\nChannel              Location\n\nSIP/1-0000 (None)\n\n1 active channel\n--END COMMAND--\r\n\r\nEvent: After\r\n\r\n",
			[]want{
				{hdrs("Response", "Follows", "Privilege", "Command", "ActionID", "7"), "Channel              Location\n\nSIP/1-0000 (None)\n\n1 active channel\n"},
				{hdrs("Event", "After"), ""},
			}},
		{"follows actionid first and marker on last line", "Response: Follows\r\nActionID: 678\r\nPrivilege: Command\r\nLine1\nKey: looks like a header\nLine2--END COMMAND--\r\n\r\n",
			[]want{{hdrs("Response", "Follows", "ActionID", "678", "Privilege", "Command"), "Line1\nKey: looks like a header\nLine2"}}},
		{"follows empty output", "Response: Follows\r\nPrivilege: Command\r\n--END COMMAND--\r\n\r\n",
			[]want{{hdrs("Response", "Follows", "Privilege", "Command"), ""}}},
		{"follows not first header is a normal packet", "Event: X\r\nResponse: Follows\r\n\r\n", []want{{hdrs("Event", "X", "Response", "Follows"), ""}}},
		{"long line beyond 1 KB", "Event: Newexten\r\nAppData: " + strings.Repeat("x", 70000) + "\r\n\r\n",
			[]want{{hdrs("Event", "Newexten", "AppData", strings.Repeat("x", 70000)), ""}}},
		{"missing blank line between events", "Event: Newexten\r\nA: 1\r\nEvent: DialEnd\r\nDialStatus: ANSWER\r\n\r\n",
			[]want{{hdrs("Event", "Newexten", "A", "1"), ""}, {hdrs("Event", "DialEnd", "DialStatus", "ANSWER"), ""}}},
		{"userevent may carry an Event header", "Event: UserEvent\r\nUserEvent: x\r\nEvent: y\r\n\r\n",
			[]want{{hdrs("Event", "UserEvent", "UserEvent", "x", "Event", "y"), ""}}},
		{"response packet with Event header is not split", "Response: Success\r\nEvent: y\r\n\r\n",
			[]want{{hdrs("Response", "Success", "Event", "y"), ""}}},
		{"end of stream without final blank line is truncation, not a packet", "Event: A\r\n\r\nEvent: B\r\n", []want{{hdrs("Event", "A"), ""}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []string{"whole", "one-byte"} {
				var r io.Reader = strings.NewReader(tc.in)
				if mode == "one-byte" {
					r = iotest.OneByteReader(r)
				}
				msgs, errs, _ := readAll(t, r, ReaderOptions{BufferSize: 16})
				if tc.name == "end of stream without final blank line is truncation, not a packet" {
					if len(errs) != 1 || !errors.Is(errs[0], ErrTruncated) {
						t.Fatalf("%s: errors %v", mode, errs)
					}
				} else if len(errs) > 0 {
					t.Fatalf("%s: errors %v", mode, errs)
				}
				if len(msgs) != len(tc.want) {
					t.Fatalf("%s: got %d packets, want %d", mode, len(msgs), len(tc.want))
				}
				for i, w := range tc.want {
					if !reflect.DeepEqual(msgs[i].Headers, w.headers) || msgs[i].Output != w.output {
						t.Fatalf("%s: packet %d\n got %q / %q\nwant %q / %q", mode, i, msgs[i].Headers, msgs[i].Output, w.headers, w.output)
					}
					// Round trip.
					again, errs, _ := readAll(t, strings.NewReader(msgs[i].String()), ReaderOptions{})
					if len(errs) > 0 || len(again) != 1 || !sameMessage(again[0], msgs[i]) {
						t.Fatalf("%s: round trip of %q failed: %v", mode, msgs[i].String(), errs)
					}
				}
			}
		})
	}
}

func TestReaderGetCaseInsensitive(t *testing.T) {
	rd := NewReader(strings.NewReader("event: Hangup\r\nactionid: x1\r\nCAUSE: 16\r\n\r\n"), ReaderOptions{})
	m, err := rd.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if m.Event() != "Hangup" || m.ActionID() != "x1" || m.Get("Cause") != "16" {
		t.Fatalf("%q", m.Headers)
	}
	if rd.Stats().Events != 1 {
		t.Fatal("lower-case Event key not counted as event")
	}
}

// TestReaderBadInput: every kind of bad input gives a typed, counted error, and the reader goes on
// with the next packet after a blank line.
func TestReaderBadInput(t *testing.T) {
	small := ReaderOptions{MaxLineSize: 100, MaxPacketSize: 300, BufferSize: 16}
	cases := []struct {
		name   string
		in     string
		opt    ReaderOptions
		kinds  []error  // errors in order
		events []string // Event names of the packets that survive
	}{
		{"line without colon", "Event: A\r\nthis is not a header\r\nX: y\r\n\r\nEvent: B\r\n\r\n", ReaderOptions{}, []error{ErrMalformedLine}, []string{"B"}},
		{"first line without colon", "garbage\r\n\r\nEvent: B\r\n\r\n", ReaderOptions{}, []error{ErrMalformedLine}, []string{"B"}},
		{"empty key", "Event: A\r\n: value\r\n\r\nEvent: B\r\n\r\n", ReaderOptions{}, []error{ErrMalformedLine}, []string{"B"}},
		{"binary garbage", "Event: A\r\n\x00\x01\xff\xfe: \x00\r\n\r\n\x89PNG\x00\x00:\r\n\r\nEvent: B\r\n\r\n", ReaderOptions{}, []error{ErrMalformedLine, ErrMalformedLine}, []string{"B"}},
		{"control byte in key", "Ev\tent: A\r\n\r\nEvent: B\r\n\r\n", ReaderOptions{}, []error{ErrMalformedLine}, []string{"B"}},
		{"overlong line", "Event: A\r\nX: " + strings.Repeat("y", 500) + "\r\nZ: 1\r\n\r\nEvent: B\r\n\r\n", small, []error{ErrLineTooLong}, []string{"B"}},
		{"overlong line without newline in buffer", "Event: A\r\nX: " + strings.Repeat("y", 5000) + "\r\n\r\nEvent: B\r\n\r\n", small, []error{ErrLineTooLong}, []string{"B"}},
		{"overlong first line", strings.Repeat("z", 5000) + "\n\nEvent: B\n\n", small, []error{ErrLineTooLong}, []string{"B"}},
		{"packet too large", "Event: A\r\n" + strings.Repeat("X: 0123456789\r\n", 40) + "\r\nEvent: B\r\n\r\n", small, []error{ErrPacketTooLarge}, []string{"B"}},
		{"follows without end marker runs into the packet limit", "Response: Follows\r\nPrivilege: Command\r\n" + strings.Repeat("text\n\n", 100) + "Event: B\r\n\r\n", small, nil, nil},
		{"cut mid-packet", "Event: A\r\n\r\nEvent: B\r\nChannel: SIP/1", ReaderOptions{}, []error{ErrTruncated}, []string{"A"}},
		{"cut after a full line", "Event: A\r\n\r\nEvent: B\r\nChannel: SIP/1\r\n", ReaderOptions{}, []error{ErrTruncated}, []string{"A"}},
		{"cut inside follows", "Response: Follows\r\nPrivilege: Command\r\nsome output\n", ReaderOptions{}, []error{ErrTruncated}, nil},
		{"stray cr at end is clean", "Event: A\r\n\r\n\r", ReaderOptions{}, nil, []string{"A"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msgs, errs, rd := readAll(t, strings.NewReader(tc.in), tc.opt)
			if tc.kinds == nil && tc.events == nil {
				// Only require: some error, no panic, the reader ended.
				if len(errs) == 0 {
					t.Fatal("no error")
				}
				return
			}
			if len(errs) != len(tc.kinds) {
				t.Fatalf("errors %v, want kinds %v", errs, tc.kinds)
			}
			for i, k := range tc.kinds {
				if !errors.Is(errs[i], k) {
					t.Fatalf("error %d = %v, want %v", i, errs[i], k)
				}
				var pe *ParseError
				if !errors.As(errs[i], &pe) || pe.Offset < 0 || pe.Offset > int64(len(tc.in)) {
					t.Fatalf("bad ParseError %#v", errs[i])
				}
			}
			var got []string
			for _, m := range msgs {
				got = append(got, m.Event())
			}
			if !reflect.DeepEqual(got, tc.events) {
				t.Fatalf("surviving events %q, want %q", got, tc.events)
			}
			if st := rd.Stats(); st.Errors != uint64(len(errs)) {
				t.Fatalf("stats count %d errors, returned %d", st.Errors, len(errs))
			}
		})
	}
}

func TestReaderTruncatedUnwrap(t *testing.T) {
	rd := NewReader(strings.NewReader("Event: A\r\nX"), ReaderOptions{})
	_, err := rd.ReadMessage()
	if !errors.Is(err, ErrTruncated) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("%v", err)
	}
	if _, err := rd.ReadMessage(); err != io.EOF {
		t.Fatalf("after truncation: %v", err)
	}
	// A read error other than EOF is kept as the cause.
	boom := errors.New("connection reset")
	rd = NewReader(io.MultiReader(strings.NewReader("Event: A\r\n"), iotest.ErrReader(boom)), ReaderOptions{})
	if _, err := rd.ReadMessage(); !errors.Is(err, ErrTruncated) || !errors.Is(err, boom) {
		t.Fatalf("%v", err)
	}
	if _, err := rd.ReadMessage(); err != boom {
		t.Fatalf("after: %v", err)
	}
}

func TestReadBanner(t *testing.T) {
	cases := []struct {
		name, in, banner string
		kind             error
		next             string // Event of the next packet
	}{
		{"asterisk 22", "Asterisk Call Manager/11.0.0\r\nResponse: Success\r\n\r\n", "Asterisk Call Manager/11.0.0", nil, ""},
		{"lf", "Asterisk Call Manager/2.10.6\nEvent: A\n\n", "Asterisk Call Manager/2.10.6", nil, "A"},
		{"not a banner", "SSH-2.0-OpenSSH_9.6\r\n", "", ErrBadBanner, ""},
		{"closed before banner", "", "", io.EOF, ""},
		{"cut banner", "Asterisk Call Man", "", ErrBadBanner, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rd := NewReader(strings.NewReader(tc.in), ReaderOptions{})
			b, err := rd.ReadBanner()
			if tc.kind != nil {
				if !errors.Is(err, tc.kind) {
					t.Fatalf("err %v, want %v", err, tc.kind)
				}
				return
			}
			if err != nil || b != tc.banner {
				t.Fatalf("%q %v", b, err)
			}
			m, err := rd.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if m.Event() != tc.next {
				t.Fatalf("next packet %q", m.Headers)
			}
		})
	}
}

func TestMessageString(t *testing.T) {
	m := (&Message{}).Add("Action", "Login").Add("Username", "crm").Add("AccountCode", "")
	if got, want := m.String(), "Action: Login\r\nUsername: crm\r\nAccountCode: \r\n\r\n"; got != want {
		t.Fatalf("%q", got)
	}
	f := &Message{Headers: hdrs("Response", "Follows", "Privilege", "Command"), Output: "a\n\nb\n"}
	if got, want := f.String(), "Response: Follows\r\nPrivilege: Command\r\na\n\nb\n--END COMMAND--\r\n\r\n"; got != want {
		t.Fatalf("%q", got)
	}
}
