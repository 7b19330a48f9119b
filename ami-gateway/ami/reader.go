package ami

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
)

// BannerPrefix starts the one line Asterisk sends when a client connects
// ("Asterisk Call Manager/11.0.0"). It is not a packet: no blank line follows it.
const BannerPrefix = "Asterisk Call Manager/"

// Default limits of a Reader. Asterisk builds outgoing packets in dynamic strings, so there is no
// protocol limit; these only stop garbage from eating memory.
const (
	DefaultMaxLineSize   = 1 << 20 // 1 MiB
	DefaultMaxPacketSize = 4 << 20 // 4 MiB: a legacy `Response: Follows` CLI dump can be large
	DefaultReadBufSize   = 64 << 10
)

// endCommand ends the raw text of a legacy `Response: Follows` reply.
const endCommand = "--END COMMAND--"

// Kinds of ParseError. Test them with errors.Is.
var (
	// ErrLineTooLong: a line is longer than ReaderOptions.MaxLineSize.
	ErrLineTooLong = errors.New("line too long")
	// ErrPacketTooLarge: a packet is longer than ReaderOptions.MaxPacketSize.
	ErrPacketTooLarge = errors.New("packet too large")
	// ErrMalformedLine: a line without a colon, with an empty key, or with a control or non-ASCII
	// byte in its key (binary garbage).
	ErrMalformedLine = errors.New("malformed line")
	// ErrTruncated: the stream ended (EOF or a read error) in the middle of a packet.
	ErrTruncated = errors.New("stream ended mid-packet")
	// ErrBadBanner: the first line is not `Asterisk Call Manager/...`.
	ErrBadBanner = errors.New("not an AMI banner")
)

// ParseError is returned by Reader for bad input. Kind is one of ErrLineTooLong,
// ErrPacketTooLarge, ErrMalformedLine, ErrTruncated, ErrBadBanner. After any kind but ErrTruncated
// the Reader skips to the next blank line, so the next ReadMessage starts on a fresh packet.
type ParseError struct {
	Kind   error
	Offset int64  // byte offset in the stream of the start of the offending line
	Line   string // the start of the offending line, quoted (Go syntax), at most 64 bytes of it
	Err    error  // the read error, for ErrTruncated (io.ErrUnexpectedEOF on a clean EOF)
}

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString("ami: ")
	b.WriteString(e.Kind.Error())
	b.WriteString(" at byte ")
	b.WriteString(strconv.FormatInt(e.Offset, 10))
	if e.Line != "" {
		b.WriteString(": ")
		b.WriteString(e.Line)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap gives Kind and, when set, the read error.
func (e *ParseError) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

// ReaderOptions tunes a Reader; zero fields take the defaults.
type ReaderOptions struct {
	MaxLineSize   int // DefaultMaxLineSize
	MaxPacketSize int // DefaultMaxPacketSize
	BufferSize    int // DefaultReadBufSize: initial read buffer, grown up to MaxPacketSize as needed
}

// ReaderStats counts what a Reader has seen.
type ReaderStats struct {
	Packets   uint64 // packets returned (events, responses, anything else)
	Events    uint64 // packets whose first header is Event
	Banners   uint64 // banner lines consumed (ReadBanner, or met between packets)
	Bytes     uint64 // bytes read from the underlying reader
	Errors    uint64 // ParseErrors returned, all kinds
	Malformed uint64
	LineLong  uint64
	PacketBig uint64
	Truncated uint64
	BadBanner uint64
	// MissingBlankLine counts Event packets that were split because a second `Event:` line
	// started before the blank line (no data is lost; Asterisk itself never does this).
	MissingBlankLine uint64
}

// span locates one header in the packet, as offsets from the packet start.
type span struct{ ks, ke, vs, ve int }

// Reader frames an AMI byte stream into Messages. It is not safe for concurrent use.
//
// Framing: `Key: Value` lines end in CRLF or a bare LF; an empty line ends a packet. Blank lines
// between packets are skipped, and so is a banner line met between packets (a recording of
// several sessions in a row). Keys may repeat and keep their order. The value is everything after
// the colon minus one optional space, so `Key:` and `Key: ` give "". A packet whose first header
// is `Response: Follows` (Asterisk <= 13 Command) is read up to `--END COMMAND--`: its Privilege
// and ActionID lines are headers, the rest (blank lines included) goes to Message.Output.
// In an event packet (except UserEvent, whose body the sending client defines) a second line
// with the key `Event` starts a new packet: the blank line was lost (hand-made captures);
// Stats().MissingBlankLine counts these.
//
// Each packet costs one string (the packet's bytes, copied once; keys, values and Output are
// substrings of it), one []Header and the Message.
type Reader struct {
	rd        io.Reader
	buf       []byte
	r, w      int   // unread data is buf[r:w]; a packet being parsed starts at buf[r]
	off       int64 // stream offset of buf[0]
	rerr      error // sticky error of rd
	now       time.Time
	maxLine   int
	maxPacket int
	resync    bool // skip to the next blank line before the next packet
	banner    string
	spans     []span
	stats     ReaderStats
}

// NewReader returns a Reader over rd.
func NewReader(rd io.Reader, opt ReaderOptions) *Reader {
	if opt.MaxLineSize <= 0 {
		opt.MaxLineSize = DefaultMaxLineSize
	}
	if opt.MaxPacketSize <= 0 {
		opt.MaxPacketSize = DefaultMaxPacketSize
	}
	if opt.MaxLineSize > opt.MaxPacketSize {
		opt.MaxLineSize = opt.MaxPacketSize
	}
	if opt.BufferSize <= 0 {
		opt.BufferSize = DefaultReadBufSize
	}
	if opt.BufferSize < 16 {
		opt.BufferSize = 16
	}
	return &Reader{
		rd:        rd,
		buf:       make([]byte, opt.BufferSize),
		maxLine:   opt.MaxLineSize,
		maxPacket: opt.MaxPacketSize,
		spans:     make([]span, 0, 64),
	}
}

// Stats returns the counters so far.
func (r *Reader) Stats() ReaderStats { return r.stats }

// Banner returns the last banner line read (without its line end), or "".
func (r *Reader) Banner() string { return r.banner }

// Buffered returns how many bytes have been read from the underlying reader but not parsed yet.
func (r *Reader) Buffered() int { return r.w - r.r }

// fill reads more data into buf[w:], compacting or growing buf when it is full.
func (r *Reader) fill() error {
	if r.rerr != nil {
		return r.rerr
	}
	if r.w == len(r.buf) {
		if r.r > 0 {
			copy(r.buf, r.buf[r.r:r.w])
			r.off += int64(r.r)
			r.w -= r.r
			r.r = 0
		} else {
			n := 2 * len(r.buf)
			if limit := r.maxPacket + 64; n > limit {
				n = limit
			}
			if n <= len(r.buf) {
				n = len(r.buf) + 4096
			}
			nb := make([]byte, n)
			copy(nb, r.buf[:r.w])
			r.buf = nb
		}
	}
	for range 100 {
		n, err := r.rd.Read(r.buf[r.w:])
		if n < 0 || n > len(r.buf)-r.w {
			r.rerr = errors.New("ami: invalid Read count from underlying reader")
			return r.rerr
		}
		r.w += n
		r.stats.Bytes += uint64(n)
		if err != nil {
			r.rerr = err
		}
		if n > 0 {
			r.now = time.Now()
			return nil
		}
		if err != nil {
			return err
		}
	}
	r.rerr = io.ErrNoProgress
	return r.rerr
}

// findLF returns the offset (from the packet start r.r) of the '\n' that ends the line starting
// at offset from, filling the buffer as needed. The error is a limit kind or a read error.
func (r *Reader) findLF(from int) (int, error) {
	scan := from
	for {
		if i := bytes.IndexByte(r.buf[r.r+scan:r.w], '\n'); i >= 0 {
			nl := scan + i
			if nl-from > r.maxLine {
				return nl, ErrLineTooLong
			}
			if nl >= r.maxPacket {
				return nl, ErrPacketTooLarge
			}
			return nl, nil
		}
		scan = r.w - r.r
		if scan-from > r.maxLine {
			return -1, ErrLineTooLong
		}
		if scan >= r.maxPacket {
			return -1, ErrPacketTooLarge
		}
		if err := r.fill(); err != nil {
			return -1, err
		}
	}
}

// fail builds, counts and returns a ParseError for the line at packet offset at.
func (r *Reader) fail(kind error, at int, readErr error) *ParseError {
	e := &ParseError{Kind: kind, Offset: r.off + int64(r.r+at), Err: readErr}
	if at >= 0 && r.r+at <= r.w {
		end := r.r + at + 64
		if end > r.w {
			end = r.w
		}
		if nl := bytes.IndexByte(r.buf[r.r+at:end], '\n'); nl >= 0 {
			end = r.r + at + nl
		}
		if end > r.r+at {
			e.Line = strconv.Quote(string(r.buf[r.r+at : end]))
		}
	}
	r.stats.Errors++
	switch kind {
	case ErrMalformedLine:
		r.stats.Malformed++
	case ErrLineTooLong:
		r.stats.LineLong++
	case ErrPacketTooLarge:
		r.stats.PacketBig++
	case ErrTruncated:
		r.stats.Truncated++
	case ErrBadBanner:
		r.stats.BadBanner++
	}
	return e
}

// limitOrRead turns an error of findLF into what ReadMessage returns. started tells whether a
// packet had begun (so EOF means truncation).
func (r *Reader) limitOrRead(err error, at int, started bool) error {
	switch err {
	case ErrLineTooLong, ErrPacketTooLarge:
		pe := r.fail(err, at, nil)
		r.resync = true
		return pe
	}
	// A read error.
	if !started {
		// Only a lone "\r" (or nothing) of a blank line may be pending at a clean end.
		if rest := r.buf[r.r+at : r.w]; len(rest) == 0 || (len(rest) == 1 && rest[0] == '\r') {
			r.r = r.w
			return err
		}
	}
	cause := err
	if err == io.EOF {
		cause = io.ErrUnexpectedEOF
	}
	pe := r.fail(ErrTruncated, at, cause)
	r.r = r.w
	return pe
}

// ReadBanner reads the first line of a session and checks that it is an AMI banner. It returns the
// line without its line end.
func (r *Reader) ReadBanner() (string, error) {
	nl, err := r.findLF(0)
	if err != nil {
		if err == ErrLineTooLong || err == ErrPacketTooLarge {
			pe := r.fail(ErrBadBanner, 0, err)
			r.resync = true
			return "", pe
		}
		if r.w > r.r {
			pe := r.fail(ErrBadBanner, 0, err)
			r.r = r.w
			return "", pe
		}
		return "", err
	}
	line := r.buf[r.r : r.r+nl]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if !bytes.HasPrefix(line, []byte(BannerPrefix)) {
		pe := r.fail(ErrBadBanner, 0, nil)
		r.r += nl + 1
		return "", pe
	}
	r.banner = string(line)
	r.stats.Banners++
	r.r += nl + 1
	return r.banner, nil
}

// discard skips input up to and including the next blank line.
func (r *Reader) discard() error {
	lineLen := 0 // bytes of the current line already dropped
	var first byte
	for {
		data := r.buf[r.r:r.w]
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if len(data) > 0 {
				if lineLen == 0 {
					first = data[0]
				}
				lineLen += len(data)
			}
			r.r = r.w
			if err := r.fill(); err != nil {
				return err
			}
			continue
		}
		if lineLen == 0 && i > 0 {
			first = data[0]
		}
		lineLen += i
		r.r += i + 1
		if lineLen == 0 || (lineLen == 1 && first == '\r') {
			r.resync = false
			return nil
		}
		lineLen = 0
	}
}

// keyEnd returns the index of the colon that ends line's key, or -1 when there is none or the key
// holds a byte that is not printable ASCII (space allowed).
func keyEnd(line []byte) int {
	for i, c := range line {
		if !keyByte[c] {
			if c == ':' {
				return i
			}
			return -1
		}
	}
	return -1
}

// keyByte tells the bytes a key may hold: printable ASCII (space included) but the colon.
var keyByte = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != ':'
	}
	return t
}()

// ReadMessage returns the next packet. At a clean end of stream between packets it returns the
// reader's error (io.EOF). Bad input gives a *ParseError; reading may go on after it.
func (r *Reader) ReadMessage() (*Message, error) {
	if r.resync {
		if err := r.discard(); err != nil {
			return nil, err
		}
	}
	// Skip blank lines and banners between packets.
	var nl int
	for {
		var err error
		nl, err = r.findLF(0)
		if err != nil {
			return nil, r.limitOrRead(err, 0, false)
		}
		line := r.buf[r.r : r.r+nl]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 {
			r.r += nl + 1
			continue
		}
		if bytes.HasPrefix(line, []byte(BannerPrefix)) && bytes.IndexByte(line, ':') < 0 {
			r.banner = string(line)
			r.stats.Banners++
			r.r += nl + 1
			continue
		}
		break
	}
	// r.r is the packet start, nl ends its first line.
	spans := r.spans[:0]
	ls := 0  // start of the current line
	end := 0 // end of the packet's content (the string we keep)
	outS, outE := -1, -1
	follows := false
	splittable := false // an Event packet (not UserEvent, whose body is client-defined)
	split := false
	for {
		if nl < 0 {
			// Fast path for a header line after the first, fully buffered: one pass over the key
			// (validating it), one IndexByte over the value.
			if !follows {
				buf := r.buf[:r.w]
				p := r.r + ls
				i := p
				for i < len(buf) && keyByte[buf[i]] {
					i++
				}
				if i < len(buf) {
					if c := buf[i]; c == ':' && i > p && !(splittable && i-p == 5 && string(buf[p:i]) == "Event") {
						if j := bytes.IndexByte(buf[i+1:], '\n'); j >= 0 {
							n := i + 1 + j - r.r
							if n-ls <= r.maxLine && n < r.maxPacket {
								le := n
								if r.buf[r.r+le-1] == '\r' {
									le--
								}
								vs := i + 1 - r.r
								if vs < le && r.buf[r.r+vs] == ' ' {
									vs++
								}
								spans = append(spans, span{ls, i - r.r, vs, le})
								end = n + 1
								ls = n + 1
								continue
							}
						}
					} else if i == p && (c == '\n' || (c == '\r' && i+1 < len(buf) && buf[i+1] == '\n')) {
						// Blank line: end of packet.
						nl = i - r.r
						if c == '\r' {
							nl++
						}
						break
					}
				}
			}
			var err error
			nl, err = r.findLF(ls)
			if err != nil {
				r.spans = spans
				return nil, r.limitOrRead(err, ls, true)
			}
		}
		le := nl
		if le > ls && r.buf[r.r+le-1] == '\r' {
			le--
		}
		if follows {
			line := r.buf[r.r+ls : r.r+le]
			if bytes.HasSuffix(line, []byte(endCommand)) {
				if outS < 0 {
					outS = ls
				}
				outE = le - len(endCommand)
				end = nl + 1
				break
			}
			if outS < 0 {
				if k := keyEnd(line); k > 0 && (isKey(line[:k], "ActionID") || isKey(line[:k], "Privilege")) {
					vs := ls + k + 1
					if vs < le && r.buf[r.r+vs] == ' ' {
						vs++
					}
					spans = append(spans, span{ls, ls + k, vs, le})
				} else {
					outS = ls
				}
			}
		} else {
			if le == ls {
				break // blank line: end of packet
			}
			line := r.buf[r.r+ls : r.r+le]
			k := keyEnd(line)
			if k <= 0 {
				r.spans = spans
				pe := r.fail(ErrMalformedLine, ls, nil)
				r.r += nl + 1
				r.resync = true
				return nil, pe
			}
			if splittable && k == 5 && string(line[:5]) == "Event" {
				// A second `Event:` line: the blank line between two events is missing (seen in
				// hand-made captures). End this packet here; the next one starts on this line.
				r.stats.MissingBlankLine++
				split = true
				break
			}
			vs := ls + k + 1
			if vs < le && r.buf[r.r+vs] == ' ' {
				vs++
			}
			spans = append(spans, span{ls, ls + k, vs, le})
			if len(spans) == 1 {
				if isKey(line[:k], "Response") && string(r.buf[r.r+vs:r.r+le]) == "Follows" {
					follows = true
				} else if isKey(line[:k], "Event") && string(r.buf[r.r+vs:r.r+le]) != "UserEvent" {
					splittable = true
				}
			}
			end = nl + 1
		}
		ls = nl + 1
		nl = -1
	}
	r.spans = spans
	s := string(r.buf[r.r : r.r+end])
	m := &Message{Headers: make([]Header, len(spans)), Received: r.now}
	for i, sp := range spans {
		m.Headers[i] = Header{Key: s[sp.ks:sp.ke], Value: s[sp.vs:sp.ve]}
	}
	if follows {
		m.Output = s[outS:outE]
		r.r += end
	} else if split {
		r.r += ls // the next packet starts on the second Event line
	} else {
		r.r += nl + 1 // past the blank line
	}
	r.stats.Packets++
	if isKeyString(m.Headers[0].Key, "Event") {
		r.stats.Events++
	}
	return m, nil
}

// isKey compares an ASCII key case-insensitively without allocating.
func isKey(b []byte, key string) bool {
	if len(b) != len(key) {
		return false
	}
	for i := range len(b) {
		c, k := b[i], key[i]
		if c == k {
			continue
		}
		if c|0x20 != k|0x20 || (c|0x20) < 'a' || (c|0x20) > 'z' {
			return false
		}
	}
	return true
}

func isKeyString(s, key string) bool {
	return len(s) == len(key) && (s == key || strings.EqualFold(s, key))
}

// isFollows reports whether m is a legacy command reply, framed with --END COMMAND--: its first
// header is `Response: Follows`. The Reader and Message.String agree on this.
func (m *Message) isFollows() bool {
	return len(m.Headers) > 0 && isKeyString(m.Headers[0].Key, "Response") && m.Headers[0].Value == "Follows"
}
