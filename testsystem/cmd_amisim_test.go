package main

import (
	"github.com/ringbridge/ringbridge/internal/testenv"

	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
	"github.com/ringbridge/ringbridge/testsystem/amisim"
)

func TestDispatch(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{name: "no command", args: nil, wantCode: 2, wantErr: "amisim"},
		{name: "help", args: []string{"help"}, wantCode: 0, wantOut: "amisim"},
		{name: "unknown", args: []string{"chaos"}, wantCode: 2, wantErr: `unknown command "chaos"`},
		{name: "amisim help", args: []string{"amisim", "-h"}, wantCode: 0, wantErr: "--secret S"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tt.args, &out, &errb); code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr %s", code, tt.wantCode, errb.String())
			}
			if !strings.Contains(out.String(), tt.wantOut) || !strings.Contains(errb.String(), tt.wantErr) {
				t.Errorf("stdout %q stderr %q", out.String(), errb.String())
			}
		})
	}
}

func TestAMISimFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no secret", []string{}, "--secret is required"},
		{"bad style", []string{"--secret", "s", "--style", "sip"}, `--style "sip": write local or pjsip`},
		{"loop without calls", []string{"--secret", "s", "--loop"}, "--loop needs calls"},
		{"stray argument", []string{"--secret", "s", "calls.ami"}, `unexpected argument "calls.ami"`},
		{"negative speed", []string{"--secret", "s", "--speed", "-1"}, "--speed -1"},
		{"missing file", []string{"--secret", "s", "--play", "nowhere.ami"}, "--play: stat nowhere.ami"},
		{"not a call file", []string{"--secret", "s", "--play", "main.go"}, "main.go: not a recording (.ami) or a scenario (.yaml)"},
		{"bad scenario", []string{"--secret", "s", "--scenarios", "testdata/bad"}, "answer.by"},
		{"folder without calls", []string{"--secret", "s", "--scenarios", "amisim"}, "no recordings (.ami) or scenarios (.yaml)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := runAMISim(context.Background(), tt.args, &out, &errb); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(errb.String(), tt.want) {
				t.Errorf("stderr %q, want %q", errb.String(), tt.want)
			}
		})
	}
}

// TestAMISimServesAndPlays runs the subcommand: a client logs in and receives the calls played
// in a loop (a recording and the generated scenarios), with one line printed per call; the
// command stops when its context ends (SIGINT).
func TestAMISimServesAndPlays(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb testenv.Buffer
	done := make(chan int, 1)
	go func() {
		done <- runAMISim(ctx, []string{"--listen", "127.0.0.1:0", "--secret", "s3", "--speed", "100", "--gap", "1s",
			"--loop", "--timestamps", "--style", "pjsip",
			"--play", "amisim/testdata/inbound-answered.ami", "--scenarios", "amisim/testdata/scenarios"}, &out, &errb)
	}()
	addrRe := regexp.MustCompile(`listening on (\S+)`)
	var addr string
	for deadline := time.Now().Add(5 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := addrRe.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatalf("no listening line; stdout %q stderr %q", out.String(), errb.String())
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	rd := ami.NewReader(bufio.NewReader(conn), ami.ReaderOptions{})
	if _, err := rd.ReadBanner(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "Action: Login\r\nUsername: crm\r\nSecret: s3\r\n\r\n")
	hangups := 0
	pjsip := false
	for hangups < 20 {
		m, err := rd.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v (stdout %q)", err, out.String())
		}
		if m.Event() == "Hangup" {
			hangups++
			if m.Timestamp().IsZero() {
				t.Errorf("event without Timestamp: %q", m.String())
			}
		}
		pjsip = pjsip || strings.HasPrefix(m.Get("Channel"), "PJSIP/")
	}
	if !pjsip {
		t.Error("--style pjsip: no PJSIP channel seen")
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d; stderr %q", code, errb.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("did not stop")
	}
	lines := out.String()
	for _, want := range []string{"call 1: recording inbound-answered", "call 2: scenario attended-transfer", "amisim: stopping"} {
		if !strings.Contains(lines, want) {
			t.Errorf("output lacks %q:\n%s", want, lines)
		}
	}
}

// TestREADMEScenario: the scenario example of README.md parses and generates.
func TestREADMEScenario(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "```yaml\n")
	j := strings.Index(text[i+8:], "```")
	if i < 0 || j < 0 {
		t.Fatal("README.md has no yaml block")
	}
	sc, err := amisim.ParseScenario([]byte(text[i+8 : i+8+j]))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := amisim.NewGenerator().Generate(sc, time.Now())
	if err != nil || rec.Len() == 0 {
		t.Fatalf("generate: %v", err)
	}
}
