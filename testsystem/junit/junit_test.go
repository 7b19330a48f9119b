package junit

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sample() Report {
	return Report{Name: "ringbridge testsystem", Suites: []Suite{
		{Name: "amo/default-rules", Timestamp: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), Time: 12500 * time.Millisecond, Cases: []Case{
			{Name: "01-inbound-answered", ClassName: "testsystem.amo.default-rules", Time: 4100 * time.Millisecond, SystemOut: "call 1.1: inbound answered"},
			{Name: "02-inbound-missed", ClassName: "testsystem.amo.default-rules", Time: 3 * time.Second,
				Failure: "1 missing, 1 unexpected", Detail: "  MISSING     POST /api/v4/calls\n  ✗ 0.duration  want \"20\", got \"19\" <&>\x1b[31m"},
		}},
		{Name: "bx/default", Cases: []Case{{Name: "01", ClassName: "testsystem.bx.default", Skipped: "no connector-bx"}}, SystemOut: "connector-bx | started"},
	}}
}

func TestEncode(t *testing.T) {
	var b bytes.Buffer
	if err := Encode(&b, sample()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	var got struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Skipped  int `xml:"skipped,attr"`
		Suites   []struct {
			Name      string `xml:"name,attr"`
			Tests     int    `xml:"tests,attr"`
			Failures  int    `xml:"failures,attr"`
			Time      string `xml:"time,attr"`
			Timestamp string `xml:"timestamp,attr"`
			SystemOut string `xml:"system-out"`
			Cases     []struct {
				Name      string `xml:"name,attr"`
				ClassName string `xml:"classname,attr"`
				Time      string `xml:"time,attr"`
				Failure   *struct {
					Message string `xml:"message,attr"`
					Text    string `xml:",chardata"`
				} `xml:"failure"`
				Skipped *struct {
					Message string `xml:"message,attr"`
				} `xml:"skipped"`
				SystemOut string `xml:"system-out"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("not XML a CI can read: %v\n%s", err, out)
	}
	if !strings.HasPrefix(out, `<?xml version="1.0" encoding="UTF-8"?>`) {
		t.Errorf("no XML declaration:\n%s", out)
	}
	if got.Tests != 3 || got.Failures != 1 || got.Skipped != 1 || len(got.Suites) != 2 {
		t.Fatalf("tests %d failures %d skipped %d suites %d; want 3, 1, 1, 2", got.Tests, got.Failures, got.Skipped, len(got.Suites))
	}
	s := got.Suites[0]
	if s.Name != "amo/default-rules" || s.Tests != 2 || s.Failures != 1 || s.Time != "12.500" || s.Timestamp != "2026-11-25T10:00:00" {
		t.Errorf("suite: %+v", s)
	}
	pass, fail := s.Cases[0], s.Cases[1]
	if pass.Failure != nil || pass.Time != "4.100" || pass.ClassName != "testsystem.amo.default-rules" || pass.SystemOut != "call 1.1: inbound answered" {
		t.Errorf("passing case: %+v", pass)
	}
	if fail.Failure == nil || fail.Failure.Message != "1 missing, 1 unexpected" || !strings.Contains(fail.Failure.Text, `want "20", got "19" <&>[31m`) {
		t.Errorf("failing case: %+v", fail.Failure)
	}
	if strings.ContainsRune(out, '\x1b') {
		t.Error("a control character reached the XML: XML 1.0 cannot hold it")
	}
	if sk := got.Suites[1].Cases[0].Skipped; sk == nil || sk.Message != "no connector-bx" || got.Suites[1].SystemOut != "connector-bx | started" {
		t.Errorf("skipped case: %+v, suite out %q", sk, got.Suites[1].SystemOut)
	}
}

func TestWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reports", "junit.xml")
	if err := Write(path, sample()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || !bytes.Contains(b, []byte(`<testsuites name="ringbridge testsystem" tests="3" failures="1"`)) {
		t.Fatalf("%v\n%s", err, b)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".junit-*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if err := Write(filepath.Join(path, "under-a-file.xml"), sample()); err == nil {
		t.Error("writing under a file: no error")
	}
}
