package amisim

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
)

var (
	uuidRe = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	// jsonUniqueidRe and jsonChannelRe find ids inside CEL Extra JSON (transfers).
	jsonUniqueidRe = regexp.MustCompile(`uniqueid"\s*:\s*"([^"]*)"`)
	jsonChannelRe  = regexp.MustCompile(`_name"\s*:\s*"([^"]*)"`)
)

// Layouts of the times events carry.
const (
	celLayout  = "2006-01-02 15:04:05"          // CEL EventTime, Cdr Start/Answer/EndTime (UTC here)
	tvLayout   = "2006-01-02T15:04:05.000-0700" // EventTV, SessionTV
	fileLayout = "20060102-150405"
)

// idIndex is what collect finds in a recording, each once, in order of first appearance.
type idIndex struct {
	uniqueids []string // epoch.seq
	channels  []string // full names
	suffixes  []string // the 8 hex digits, shared by a Local pair's ;1 and ;2
}

// collect finds the identifiers: Uniqueids in every *Uniqueid/*Linkedid field (SwapUniqueid,
// DestUniqueid, CEL UniqueID/LinkedID, ...) and in CEL Extra JSON; channel names in every
// *Channel field (Channel, DestChannel, DestinationChannel, LocalOneChannel, ...), in Peer and
// Newname, and in CEL Extra JSON.
func (r *Recording) collect() idIndex {
	var ix idIndex
	seenU, seenC, seenS := map[string]bool{}, map[string]bool{}, map[string]bool{}
	addU := func(v string) {
		if sm := trailingUniqueid(v); sm != "" && !seenU[sm] {
			seenU[sm] = true
			ix.uniqueids = append(ix.uniqueids, sm)
		}
	}
	addC := func(v string) {
		for _, name := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '&' }) {
			name = strings.TrimSpace(name)
			suffix := channelSuffix(name)
			if suffix == "" {
				continue
			}
			if !seenC[name] {
				seenC[name] = true
				ix.channels = append(ix.channels, name)
			}
			if !seenS[suffix] {
				seenS[suffix] = true
				ix.suffixes = append(ix.suffixes, suffix)
			}
		}
	}
	for _, p := range r.Packets {
		for _, h := range p.Msg.Headers {
			k := h.Key
			switch {
			case hasSuffixFold(k, "bridgeuniqueid"):
			case hasSuffixFold(k, "uniqueid") || hasSuffixFold(k, "linkedid"):
				addU(h.Value)
			case hasSuffixFold(k, "channel") || strings.EqualFold(k, "peer") || strings.EqualFold(k, "newname"):
				addC(h.Value)
			}
			if strings.Contains(h.Value, `":"`) {
				for _, sm := range jsonUniqueidRe.FindAllStringSubmatch(h.Value, -1) {
					addU(sm[1])
				}
				for _, sm := range jsonChannelRe.FindAllStringSubmatch(h.Value, -1) {
					addC(sm[1])
				}
			}
		}
	}
	return ix
}

// Fresh returns a copy of r whose calls are new calls: every Uniqueid/Linkedid keeps its epoch
// and gets a sequence number unique to copy n (n*10^k + i, with 10^k >= 10000 above the number of
// ids), every channel suffix -XXXXXXXX becomes another 8-hex-digit one unique to n (high bit set,
// so it does not meet Asterisk's own counter), and every bridge UUID a new UUID. The rewrite is
// consistent across all fields that refer to them, prefixed forms, CEL Extra JSON, variable
// values and recording file names included. Copies with different n share no id; use a distinct
// n >= 1 for every copy in a test, across recordings. It panics on n < 1 or an n too large for
// the 31 bits of suffix left (about 500000 for a single call).
func (r *Recording) Fresh(n int) *Recording {
	if n < 1 {
		panic("amisim: Recording.Fresh: n must be >= 1")
	}
	ix := r.collect()
	stride := 10000
	for stride <= len(ix.uniqueids) {
		stride *= 10
	}
	uids := make(map[string]string, len(ix.uniqueids))
	for j, u := range ix.uniqueids {
		epoch, _, _ := strings.Cut(u, ".")
		uids[u] = epoch + "." + strconv.Itoa(n*stride+j)
	}
	bits := 12
	for 1<<bits <= len(ix.suffixes) {
		bits++
	}
	if n >= 1<<(31-bits) {
		panic(fmt.Sprintf("amisim: Recording.Fresh: n=%d too large", n))
	}
	sufs := make(map[string]string, len(ix.suffixes))
	for j, s := range ix.suffixes {
		sufs[s] = fmt.Sprintf("%08x", 1<<31|n<<bits|j)
	}
	uuids := map[string]string{}
	newUUID := func(u string) string {
		if v, ok := uuids[u]; ok {
			return v
		}
		v := fmt.Sprintf("%08x-0000-4000-8000-%012x", n, len(uuids))
		uuids[u] = v
		return v
	}
	return r.mapValues(fmt.Sprintf("%s#%d", r.Name, n), r.start, func(_, v string) string {
		v = replaceSuffixes(v, sufs)
		if len(v) >= 36 && strings.Count(v, "-") >= 4 { // cheap test before the regexp
			v = uuidRe.ReplaceAllStringFunc(v, newUUID)
		}
		return replaceUniqueids(v, uids)
	})
}

// Retime returns a copy of r moved in time so that Start() is start, gaps kept: CEL EventTime,
// Cdr StartTime/AnswerTime/EndTime (UTC), EventTV/SessionTV, Timestamp headers, queue member
// LastCall/LoginTime/LastPause, the date-time in recording file names, and the epoch of every
// Uniqueid/Linkedid (a channel's creation second), all by the same delta (second-precision
// fields are floored after adding it, so EventTime and epochs move by the same whole seconds).
// A recording without times is returned as an unchanged copy.
func (r *Recording) Retime(start time.Time) *Recording {
	if r.start.IsZero() {
		return r.mapValues(r.Name, r.start, func(_, v string) string { return v })
	}
	delta := start.Sub(r.start)
	shiftSec := func(sec int64) int64 { return time.Unix(sec, 0).Add(delta).Unix() }
	uids := map[string]string{}
	for _, u := range r.collect().uniqueids {
		epoch, seq, _ := strings.Cut(u, ".")
		e, err := strconv.ParseInt(epoch, 10, 64)
		if err != nil {
			continue
		}
		uids[u] = strconv.FormatInt(shiftSec(e), 10) + "." + seq
	}
	return r.mapValues(r.Name, start, func(k, v string) string {
		switch k {
		case "EventTime", "StartTime", "AnswerTime", "EndTime":
			if t, err := time.ParseInLocation(celLayout, v, time.UTC); err == nil {
				layout := celLayout
				if i := strings.IndexByte(v, '.'); i >= 0 {
					layout += "." + strings.Repeat("0", len(v)-i-1)
				}
				return t.Add(delta).Format(layout)
			}
		case "EventTV", "SessionTV":
			if t, err := time.Parse("2006-01-02T15:04:05-0700", v); err == nil {
				return t.Add(delta).In(t.Location()).Format(tvLayout)
			}
		case "Timestamp":
			if t := ami.ParseTimestamp(v); !t.IsZero() {
				return formatTimestamp(t.Add(delta))
			}
		case "LastCall", "LoginTime", "LastPause":
			if sec, err := strconv.ParseInt(v, 10, 64); err == nil && sec > 0 {
				return strconv.FormatInt(shiftSec(sec), 10)
			}
		}
		if hasDigitRun(v, 8) {
			v = shiftFileDates(v, delta)
		}
		return replaceUniqueids(v, uids)
	})
}

// replaceUniqueids rewrites the known `epoch.seq` ids in v: each maximal digits.digits run that
// is exactly a known id (not a Timestamp, not a longer sequence).
func replaceUniqueids(v string, ids map[string]string) string {
	if len(ids) == 0 || strings.IndexByte(v, '.') < 0 {
		return v
	}
	var b strings.Builder
	last := 0
	for i := 0; i < len(v); {
		if !isDigit(v[i]) {
			i++
			continue
		}
		j := i
		for j < len(v) && isDigit(v[j]) {
			j++
		}
		if j+1 >= len(v) || v[j] != '.' || !isDigit(v[j+1]) {
			i = j
			continue
		}
		k := j + 1
		for k < len(v) && isDigit(v[k]) {
			k++
		}
		if n, ok := ids[v[i:k]]; ok {
			b.WriteString(v[last:i])
			b.WriteString(n)
			last = k
		}
		i = k
	}
	if last == 0 {
		return v
	}
	b.WriteString(v[last:])
	return b.String()
}

// trailingUniqueid returns the `epoch.seq` that ends v (a Uniqueid, maybe `<systemname>-` first),
// or "".
func trailingUniqueid(v string) string {
	k := len(v)
	j := k
	for j > 0 && isDigit(v[j-1]) {
		j--
	}
	if j == k || j < 2 || v[j-1] != '.' {
		return ""
	}
	i := j - 1
	for i > 0 && isDigit(v[i-1]) {
		i--
	}
	if i == j-1 {
		return ""
	}
	return v[i:k]
}

// channelSuffix returns the 8 hex digits of Asterisk's -%08x sequence suffix of a channel name
// (`Local/101@phones-0000002b;1`, `PJSIP/trunk-0000000a`, with an optional `<ZOMBIE>`), or "".
func channelSuffix(name string) string {
	slash := strings.IndexByte(name, '/')
	if slash <= 0 {
		return ""
	}
	for i := 0; i < slash; i++ {
		if c := name[i]; !isAlnum(c) && c != '_' {
			return ""
		}
	}
	end := len(name)
	if name[end-1] == '>' {
		if lt := strings.LastIndexByte(name, '<'); lt > slash {
			end = lt
		}
	}
	if semi := strings.LastIndexByte(name[:end], ';'); semi > slash {
		digits := name[semi+1 : end]
		if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
			return ""
		}
		end = semi
	}
	if end-9 <= slash || name[end-9] != '-' {
		return ""
	}
	suffix := name[end-8 : end]
	for i := 0; i < 8; i++ {
		if c := suffix[i]; !isDigit(c) && (c < 'a' || c > 'f') {
			return ""
		}
	}
	return suffix
}

// shiftFileDates moves each YYYYMMDD-HHMMSS of v (recording file names) by delta.
func shiftFileDates(v string, delta time.Duration) string {
	const n = len(fileLayout)
	var b strings.Builder
	last := 0
	for i := 0; i+n <= len(v); i++ {
		if v[i+8] != '-' || (i > 0 && isDigit(v[i-1])) || (i+n < len(v) && isDigit(v[i+n])) {
			continue
		}
		s := v[i : i+n]
		if strings.TrimLeft(s[:8], "0123456789") != "" || strings.TrimLeft(s[9:], "0123456789") != "" {
			continue
		}
		t, err := time.ParseInLocation(fileLayout, s, time.UTC)
		if err != nil {
			continue
		}
		b.WriteString(v[last:i])
		b.WriteString(t.Add(delta).Format(fileLayout))
		last = i + n
		i += n - 1
	}
	if last == 0 {
		return v
	}
	b.WriteString(v[last:])
	return b.String()
}

// hasSuffixFold is strings.HasSuffix ignoring ASCII case.
func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// replaceSuffixes rewrites -XXXXXXXX channel suffixes known in sufs, where v names a channel (a
// '/' comes before) and the 8 hex digits are not part of a longer word.
func replaceSuffixes(v string, sufs map[string]string) string {
	if len(sufs) == 0 || strings.IndexByte(v, '/') < 0 {
		return v
	}
	var b strings.Builder
	last := 0
	for i := 0; i+9 <= len(v); i++ {
		if v[i] != '-' || (i+9 < len(v) && isAlnum(v[i+9])) {
			continue
		}
		nv, ok := sufs[v[i+1:i+9]]
		if !ok || strings.IndexByte(v[:i], '/') < 0 {
			continue
		}
		b.WriteString(v[last : i+1])
		b.WriteString(nv)
		last = i + 9
		i += 8
	}
	if last == 0 {
		return v
	}
	b.WriteString(v[last:])
	return b.String()
}

// hasDigitRun tells whether v has n digits in a row.
func hasDigitRun(v string, n int) bool {
	run := 0
	for i := 0; i < len(v); i++ {
		if v[i] >= '0' && v[i] <= '9' {
			if run++; run >= n {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// eventTime is when the stream says m happened, if it says.
func eventTime(m *ami.Message) (time.Time, bool) {
	if v, ok := exact(m, "Timestamp"); ok {
		if t := ami.ParseTimestamp(v); !t.IsZero() {
			return t, true
		}
	}
	switch exactGet(m, "Event") {
	case "CEL":
		if t, err := time.ParseInLocation(celLayout, exactGet(m, "EventTime"), time.UTC); err == nil {
			return t, true
		}
	case "Cdr":
		// Asterisk sends the Cdr when the leg is finalised, right after its end.
		if t, err := time.ParseInLocation(celLayout, exactGet(m, "EndTime"), time.UTC); err == nil {
			return t, true
		}
	case "Newchannel":
		if u := trailingUniqueid(exactGet(m, "Uniqueid")); u != "" {
			epoch, _, _ := strings.Cut(u, ".")
			if sec, err := strconv.ParseInt(epoch, 10, 64); err == nil && sec > 0 {
				return time.Unix(sec, 0).UTC(), true
			}
		}
	}
	if v, ok := exact(m, "EventTV"); ok {
		if t, err := time.Parse("2006-01-02T15:04:05-0700", v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
