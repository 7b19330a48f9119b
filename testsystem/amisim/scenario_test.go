package amisim

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimalInbound = "direction: inbound\nfrom: \"79161234567\"\nto: \"4951234567\"\nring: [101]\n"

func TestParseScenarioErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error: the field, the problem, the fix
	}{
		{"empty file", "", []string{"(file)", "write at least direction, from and to"}},
		{"not yaml", "direction: [inbound", []string{"(file)", "not valid YAML", "fix the syntax"}},
		{"two documents", minimalInbound + "---\n" + minimalInbound, []string{"more than one document"}},
		{"a list at the top", "- direction: inbound\n", []string{"(file)", "expected a mapping"}},
		{"unknown key with a typo", minimalInbound + "tlak: 5s\n", []string{"line 5", "tlak", "unknown key", "did you mean talk?"}},
		{"unknown nested key", minimalInbound + "answer: {by: \"101\", afterr: 4s}\ntalk: 3s\n", []string{"answer.afterr", "did you mean after?"}},
		{"key twice", minimalInbound + "ring: [102]\n", []string{"ring", "given twice"}},
		{"missing direction", "from: \"79161234567\"\nto: \"4951234567\"\n", []string{"direction", "missing", "inbound, outbound or internal"}},
		{"bad direction", strings.Replace(minimalInbound, "inbound", "incoming", 1), []string{"direction", `"incoming" is not known`}},
		{"bad style", minimalInbound + "style: sip\n", []string{"style", "write local or pjsip"}},
		{"bad start", minimalInbound + "start: yesterday\n", []string{"start", "RFC 3339"}},
		{"missing from", "direction: inbound\nto: \"4951234567\"\nring: [101]\n", []string{"from", "missing"}},
		{"caller not a number", strings.Replace(minimalInbound, "79161234567", "ivan", 1), []string{"from", "not a phone number"}},
		{"no ring nor queue", "direction: inbound\nfrom: \"79161234567\"\nto: \"4951234567\"\n", []string{"ring", "missing", "queue"}},
		{"ring and queue", minimalInbound + "queue: {members: [101]}\n", []string{"queue", "keep one of ring"}},
		{"ring not a list", strings.Replace(minimalInbound, "ring: [101]", "ring: {a: 1}", 1), []string{"ring", "expected a list"}},
		{"ring with a name", strings.Replace(minimalInbound, "[101]", "[alice]", 1), []string{"ring[0]", "not an extension"}},
		{"ring twice the same", strings.Replace(minimalInbound, "[101]", "[101, 101]", 1), []string{"ring[1]", "listed twice"}},
		{"bad duration", minimalInbound + "ring_timeout: soon\n", []string{"ring_timeout", "not a duration", "4s"}},
		{"negative duration", minimalInbound + "ring_timeout: -5s\n", []string{"ring_timeout", "out of range"}},
		{"answer by one that does not ring", minimalInbound + "answer: {by: \"105\", after: 3s}\ntalk: 5s\n", []string{"answer.by", `"105" does not ring`, "write one of 101"}},
		{"answer without after", minimalInbound + "answer: {by: \"101\"}\ntalk: 5s\n", []string{"answer.after", "missing"}},
		{"answer after the timeout", minimalInbound + "answer: {after: 25s}\ntalk: 5s\n", []string{"answer.after", "not before ring_timeout"}},
		{"answer without talk", minimalInbound + "answer: {after: 3s}\n", []string{"talk", "missing"}},
		{"talk without answer", minimalInbound + "talk: 3s\n", []string{"talk", "nobody answers"}},
		{"busy and answer", minimalInbound + "busy: true\nanswer: {after: 3s}\ntalk: 3s\n", []string{"exclude each other"}},
		{"busy ring group", strings.Replace(minimalInbound, "[101]", "[101, 102]", 1) + "busy: true\n", []string{"busy", "ring one extension"}},
		{"busy not a bool", minimalInbound + "busy: maybe\n", []string{"busy", "expected true or false"}},
		{"caller hangs up after the timeout", minimalInbound + "caller_hangs_up_after: 30s\n", []string{"caller_hangs_up_after", "not before ring_timeout"}},
		{"bad hangup", minimalInbound + "answer: {after: 3s}\ntalk: 3s\nhangup: both\n", []string{"hangup", "callee or caller"}},
		{"queue answer in the pause", "direction: inbound\nfrom: \"79161234567\"\nto: \"4951234567\"\nqueue: {members: [101], member_timeout: 10s, retry: 5s}\nanswer: {after: 12s}\ntalk: 3s\n",
			[]string{"answer.after", "retry pause", "10s to 15s"}},
		{"queue without members", "direction: inbound\nfrom: \"79161234567\"\nto: \"4951234567\"\nqueue: {name: support}\n", []string{"queue.members", "missing"}},
		{"queue too many rounds", "direction: inbound\nfrom: \"79161234567\"\nto: \"4951234567\"\nqueue: {members: [101], member_timeout: 1s, retry: 1s, max_wait: 1h}\n", []string{"queue.max_wait", "rounds"}},
		{"outbound with ring", "direction: outbound\nfrom: \"101\"\nto: \"89161234567\"\nring: [102]\n", []string{"ring", "remove ring"}},
		{"outbound to an extension", "direction: outbound\nfrom: \"101\"\nto: \"102\"\n", []string{"to", "not an outside number"}},
		{"outbound answered by another", "direction: outbound\nfrom: \"101\"\nto: \"89161234567\"\nanswer: {by: \"102\", after: 3s}\ntalk: 3s\n", []string{"answer.by", "write 89161234567"}},
		{"transfer without answer", minimalInbound + "transfer: {kind: blind, to: \"102\", after: 3s}\n", []string{"transfer", "only an answered call"}},
		{"transfer kind", minimalInbound + "answer: {after: 3s}\ntalk: 3s\ntransfer: {kind: warm, to: \"102\", after: 3s}\n", []string{"transfer.kind", "blind, attended or redirect"}},
		{"transfer to the answerer", minimalInbound + "answer: {after: 3s}\ntalk: 3s\ntransfer: {kind: blind, to: \"101\", after: 3s}\n", []string{"transfer.to", "already talks"}},
		{"blind with consult", minimalInbound + "answer: {after: 3s}\ntalk: 3s\ntransfer: {kind: blind, to: \"102\", after: 3s, consult: 2s}\n", []string{"transfer.consult", "only an attended"}},
		{"transfer without after", minimalInbound + "answer: {after: 3s}\ntalk: 3s\ntransfer: {kind: blind, to: \"102\"}\n", []string{"transfer.after", "missing"}},
		{"recording placeholder", minimalInbound + "recording: \"in-{caller}.wav\"\n", []string{"recording", "{caller} is not known", "{uniqueid}"}},
		{"recording absolute", minimalInbound + "recording: /tmp/x.wav\n", []string{"recording", "under the monitor folder"}},
		{"recording unbalanced", minimalInbound + "recording: \"in-{date.wav\"\n", []string{"recording", "unbalanced"}},
		{"click to call inbound", minimalInbound + "click_to_call: {phone_ring: 3s}\n", []string{"click_to_call", "outbound"}},
		{"click to call phone", "direction: outbound\nfrom: \"101\"\nto: \"89161234567\"\nclick_to_call: {phone: maybe}\n", []string{"click_to_call.phone", "answer, no_answer or busy"}},
		{"click to call phone never answers but answer", "direction: outbound\nfrom: \"101\"\nto: \"89161234567\"\nclick_to_call: {phone: no_answer}\nanswer: {after: 3s}\ntalk: 3s\n", []string{"answer", "never dialled"}},
		{"local style phone numbers", minimalInbound + "style: local\nring: [201]\n", []string{"ring"}},
		{"local style phone numbers", strings.Replace(minimalInbound, "[101]", "[201]", 1) + "style: local\n", []string{"ring", "100-199"}},
		{"trunk name", "direction: outbound\nfrom: \"101\"\nto: \"89161234567\"\ntrunk: \"my trunk\"\n", []string{"trunk", "start with a letter"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseScenario([]byte(tt.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			var se *ScenarioError
			if !errors.As(err, &se) {
				t.Fatalf("error %T %v is not a *ScenarioError", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestParseScenarioDefaults(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		check func(sc *Scenario) bool
	}{
		{"pjsip by default, 20 s dial, callee hangs up", minimalInbound,
			func(sc *Scenario) bool {
				return sc.Style == StylePJSIP && sc.RingTimeout == 20*time.Second && sc.HangupBy == HangupCallee && sc.Trunk == "trunk"
			}},
		{"outbound dials 30 s; answered by the number", "direction: outbound\nfrom: \"101\"\nto: \"89161234567\"\nanswer: {after: 3}\ntalk: 2.5\n",
			func(sc *Scenario) bool {
				return sc.RingTimeout == 30*time.Second && sc.Answer.By == "89161234567" && sc.Answer.After == 3*time.Second && sc.Talk == 2500*time.Millisecond
			}},
		{"internal rings the extension called", "direction: internal\nfrom: \"101\"\nto: \"102\"\n",
			func(sc *Scenario) bool { return strings.Join(sc.Ring, ",") == "102" }},
		{"a single ringer answers without by", minimalInbound + "answer: {after: 4s}\ntalk: 1m\n",
			func(sc *Scenario) bool { return sc.Answer.By == "101" && sc.Talk == time.Minute }},
		{"queue defaults", "direction: inbound\nfrom: \"79161234567\"\nto: \"4951234567\"\nqueue: {members: 101}\n",
			func(sc *Scenario) bool {
				q := sc.Queue
				return q.Name == "support" && strings.Join(q.Members, ",") == "101" && q.MemberTimeout == 15*time.Second &&
					q.Retry == 3*time.Second && q.MaxWait == 120*time.Second
			}},
		{"transfer defaults", minimalInbound + "answer: {after: 3s}\ntalk: 3s\ntransfer: {kind: attended, to: \"102\", after: 3s}\n",
			func(sc *Scenario) bool {
				return sc.Transfer.Ring == 3*time.Second && sc.Transfer.Consult == 5*time.Second
			}},
		{"click to call: yes", "direction: outbound\nfrom: \"101\"\nto: \"89161234567\"\nclick_to_call: yes\n",
			func(sc *Scenario) bool {
				c := sc.ClickToCall
				return c != nil && c.Phone == PhoneAnswer && c.PhoneRing == 3*time.Second && c.Timeout == 30*time.Second
			}},
		{"start", minimalInbound + "start: 2026-11-25T19:26:53.5Z\n",
			func(sc *Scenario) bool { return sc.Start.Equal(time.Date(2026, 11, 25, 19, 26, 53, 5e8, time.UTC)) }},
		{"anchors and aliases", "direction: inbound\nfrom: \"79161234567\"\nto: \"4951234567\"\nring: &g [101, 102]\nqueue_like: *g\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := ParseScenario([]byte(tt.yaml))
			if tt.check == nil {
				if err == nil {
					t.Fatal("unknown key accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(sc) {
				t.Errorf("defaults not as expected: %+v", sc)
			}
		})
	}
}

func TestLoadScenarios(t *testing.T) {
	scs, err := LoadScenarios(filepath.Join("testdata", "scenarios"))
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 15 || scs[0].Name != "attended-transfer" {
		t.Fatalf("loaded %d scenarios, first %q", len(scs), scs[0].Name)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(minimalInbound+"talk: 3s\n"), 0o644)
	if _, err := LoadScenarios(dir); err == nil || !strings.Contains(err.Error(), "bad.yaml") || !strings.Contains(err.Error(), "talk") {
		t.Fatalf("error %v should name the file and the field", err)
	}
}

// FuzzParseScenario: any input gives a scenario or a *ScenarioError, never a panic; and every
// scenario the parser accepts generates, in both styles, a call that ends cleanly.
func FuzzParseScenario(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "scenarios", "*.yaml"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		minimalInbound, "", "{}", "[]", "direction: inbound\nfrom: 1\nto: 2\n", "a: &a [*a]\n",
		"direction: inbound\nfrom: \"79160000001\"\nto: \"4950000000\"\nqueue: {members: [101, 102, 103], member_timeout: 5s, retry: 2s}\nanswer: {by: \"103\", after: 9s}\ntalk: 20s\ntransfer: {kind: attended, to: \"105\", after: 1s}\n",
		"direction: outbound\nfrom: \"101\"\nto: \"89161234567\"\nclick_to_call: {phone: busy}\n",
	} {
		f.Add([]byte(s))
	}
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := ParseScenario(data)
		if err != nil {
			var se *ScenarioError
			if !errors.As(err, &se) {
				t.Fatalf("error %T %v is not a *ScenarioError", err, err)
			}
			return
		}
		for _, style := range []Style{StylePJSIP, StyleLocal} {
			if style == StyleLocal && sc.Style != StyleLocal {
				continue // the local style accepts fewer extensions; check what was parsed
			}
			sc.Style = style
			rec, err := NewGenerator().Generate(sc, start)
			if err != nil {
				t.Fatalf("accepted scenario does not generate: %v\n%s", err, data)
			}
			if rec.Len() == 0 {
				t.Fatal("no events")
			}
		}
	})
}
