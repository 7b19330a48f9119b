// Package junit writes test results as JUnit XML, the format CI systems read (the Ant/Surefire
// schema: testsuites > testsuite > testcase with failure, skipped, system-out).
package junit

import (
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Report is one run: its suites.
type Report struct {
	Name   string
	Suites []Suite
}

// Suite is a group of cases.
type Suite struct {
	Name      string
	Timestamp time.Time
	Time      time.Duration
	Cases     []Case
	// SystemOut is the suite's log (e.g. the services' last lines when it failed to start).
	SystemOut string
}

// Case is one test.
type Case struct {
	Name      string
	ClassName string
	Time      time.Duration
	// Failure, when not empty, is the one-line reason; Detail the full report.
	Failure string
	Detail  string
	// Skipped, when not empty, says why the case did not run.
	Skipped   string
	SystemOut string
}

// Failed counts the failed cases.
func (s Suite) Failed() int {
	n := 0
	for _, c := range s.Cases {
		if c.Failure != "" {
			n++
		}
	}
	return n
}

func (s Suite) skipped() int {
	n := 0
	for _, c := range s.Cases {
		if c.Skipped != "" && c.Failure == "" {
			n++
		}
	}
	return n
}

type xmlSuites struct {
	XMLName  xml.Name   `xml:"testsuites"`
	Name     string     `xml:"name,attr,omitempty"`
	Tests    int        `xml:"tests,attr"`
	Failures int        `xml:"failures,attr"`
	Errors   int        `xml:"errors,attr"`
	Skipped  int        `xml:"skipped,attr"`
	Time     string     `xml:"time,attr"`
	Suites   []xmlSuite `xml:"testsuite"`
}

type xmlSuite struct {
	Name      string    `xml:"name,attr"`
	Tests     int       `xml:"tests,attr"`
	Failures  int       `xml:"failures,attr"`
	Errors    int       `xml:"errors,attr"`
	Skipped   int       `xml:"skipped,attr"`
	Time      string    `xml:"time,attr"`
	Timestamp string    `xml:"timestamp,attr,omitempty"`
	Cases     []xmlCase `xml:"testcase"`
	SystemOut *cdata    `xml:"system-out,omitempty"`
}

type xmlCase struct {
	Name      string      `xml:"name,attr"`
	ClassName string      `xml:"classname,attr"`
	Time      string      `xml:"time,attr"`
	Failure   *xmlFailure `xml:"failure,omitempty"`
	Skipped   *xmlSkipped `xml:"skipped,omitempty"`
	SystemOut *cdata      `xml:"system-out,omitempty"`
}

type xmlFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

type xmlSkipped struct {
	Message string `xml:"message,attr"`
}

type cdata struct {
	Text string `xml:",chardata"`
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// Encode writes the report as JUnit XML.
func Encode(w io.Writer, r Report) error {
	out := xmlSuites{Name: r.Name}
	var total time.Duration
	for _, s := range r.Suites {
		xs := xmlSuite{Name: s.Name, Tests: len(s.Cases), Failures: s.Failed(), Skipped: s.skipped(), Time: seconds(s.Time)}
		if !s.Timestamp.IsZero() {
			xs.Timestamp = s.Timestamp.UTC().Format("2006-01-02T15:04:05")
		}
		if s.SystemOut != "" {
			xs.SystemOut = &cdata{Text: clean(s.SystemOut)}
		}
		for _, c := range s.Cases {
			xc := xmlCase{Name: c.Name, ClassName: c.ClassName, Time: seconds(c.Time)}
			switch {
			case c.Failure != "":
				xc.Failure = &xmlFailure{Message: clean(c.Failure), Type: "mismatch", Text: clean(c.Detail)}
			case c.Skipped != "":
				xc.Skipped = &xmlSkipped{Message: clean(c.Skipped)}
			}
			if c.SystemOut != "" {
				xc.SystemOut = &cdata{Text: clean(c.SystemOut)}
			}
			xs.Cases = append(xs.Cases, xc)
		}
		out.Tests += xs.Tests
		out.Failures += xs.Failures
		out.Skipped += xs.Skipped
		total += s.Time
		out.Suites = append(out.Suites, xs)
	}
	out.Time = seconds(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// clean drops the characters XML 1.0 cannot hold (control characters from a service's log
// would make the whole file unreadable to the CI).
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return r
		case r < 0x20 || r == 0xFFFE || r == 0xFFFF:
			return -1
		}
		return r
	}, s)
}

// Write writes the report to path, through a temporary file and a rename, so a CI never reads
// half a file.
func Write(path string, r Report) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("junit: %w", err)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".junit-*.xml")
	if err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := Encode(tmp, r); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	return nil
}
