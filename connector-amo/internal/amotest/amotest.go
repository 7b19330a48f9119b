// Package amotest is what connector-amo's tests share: the call events of the real Asterisk 22
// recordings (replayed through the gateway's own correlator, as a live PBX would make them), and a
// simulated amoCRM account seeded with the people and numbers those calls involve.
package amotest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
	gwcalls "github.com/ringbridge/ringbridge/ami-gateway/calls"
	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/internal/config"
	amosim "github.com/ringbridge/ringbridge/testsystem/crmsim/amo"
)

// FixturesDir is shared/fixtures/ami-asterisk22, found from this file.
func FixturesDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "shared", "fixtures", "ami-asterisk22")
}

// Recording is the call events one recording makes.
type Recording struct {
	Name   string // inbound-answered, ...
	Events []callevent.Event
}

// Ended is the recording's ended event.
func (r Recording) Ended() callevent.Event {
	for _, e := range r.Events {
		if e.Kind == callevent.Ended {
			return e
		}
	}
	return callevent.Event{}
}

// Recordings replays every recording of the Asterisk 22 fixtures through the gateway's
// correlator, with the replay.yaml classification.
func Recordings(t testing.TB) []Recording {
	t.Helper()
	dir := FixturesDir()
	raw, err := os.ReadFile(filepath.Join(dir, "replay.yaml"))
	if err != nil {
		t.Fatalf("the Asterisk 22 fixtures: %v", err)
	}
	var f struct {
		PBX      string          `yaml:"pbx"`
		Classify config.Classify `yaml:"classify"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.ami"))
	sort.Strings(files)
	if len(files) < 15 {
		t.Fatalf("%d recordings in %s, want the 15 of the Asterisk 22 fixtures", len(files), dir)
	}
	var out []Recording
	for _, file := range files {
		cl, err := gwcalls.NewClassifier(f.Classify)
		if err != nil {
			t.Fatal(err)
		}
		c := gwcalls.New(gwcalls.Options{PBX: f.PBX}, cl)
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rd := ami.NewReader(bytes.NewReader(b), ami.ReaderOptions{})
		rec := Recording{Name: strings.TrimSuffix(filepath.Base(file), ".ami")}
		for {
			m, err := rd.ReadMessage()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			rec.Events = append(rec.Events, c.Handle(m)...)
		}
		out = append(out, rec)
	}
	return out
}

// The employees of the fixtures' PBX and their amoCRM users (amoCRM has no phones for users:
// this map is the connector's config).
const (
	Admin   = 501 // installed the integration
	User101 = 502
	User102 = 503
	User103 = 504
)

// Users is the extension → user map of the config.
func Users() []config.AmoUser {
	return []config.AmoUser{{Extension: "101", UserID: User101}, {Extension: "102", UserID: User102}, {Extension: "103", UserID: User103}}
}

// Known numbers of the fixtures' callers, stored in the account in other forms than the PBX
// reports them (+7...), as people type them.
var knownContacts = []amosim.Contact{
	{ID: 1001, Name: "Иван (8-form)", Phones: []amosim.Phone{{Value: "8 916 123-45-67", Enum: "MOB"}}}, // inbound-answered, outbound-answered
	{ID: 1002, Name: "Олег (+7 with spaces)", Phones: []amosim.Phone{{Value: "+7 (903) 555-66-77"}}},   // attended-transfer
	{ID: 1003, Name: "Ольга (7-form)", Phones: []amosim.Phone{{Value: "79267778899"}}},                 // inbound-with-recording
	{ID: 1004, Name: "Пётр", Phones: []amosim.Phone{{Value: "+79161112233"}}},                          // click-to-call
	{ID: 1005, Name: "Мария", Phones: []amosim.Phone{{Value: "+7 917 555 12 34"}}},                     // blind-transfer
	{ID: 1006, Name: "Nikolay", Phones: []amosim.Phone{{Value: "8(917)444-00-00"}}},                    // blind-transfer-redirect
	{ID: 1007, Name: "Queue caller", Phones: []amosim.Phone{{Value: "+79163334455"}}},                  // queue-answered
	{ID: 1008, Name: "Ring group caller", Phones: []amosim.Phone{{Value: "89057776655"}}},              // ringgroup-answered-by-second
	{ID: 1009, Name: "Missed caller", Phones: []amosim.Phone{{Value: "+7 903 111 22 33"}}},             // inbound-missed
	{ID: 1010, Name: "Busy caller", Phones: []amosim.Phone{{Value: "+79269998877"}}},                   // inbound-busy
}

// UnknownNumbers are the fixtures' outside numbers no card has.
var UnknownNumbers = []string{"+79855550011", "+74957654321", "+79998887766"}

// Seed is the account: the admin and the three employees, the known callers (one of them with
// one open lead, so calls land on it), a pipeline.
func Seed() amosim.Seed {
	return amosim.Seed{
		Users: []amosim.User{
			{ID: Admin, Name: "Admin", IsAdmin: true},
			{ID: User101, Name: "Employee 101"},
			{ID: User102, Name: "Employee 102"},
			{ID: User103, Name: "Employee 103"},
		},
		Contacts: append([]amosim.Contact(nil), knownContacts...),
		Leads:    []amosim.Lead{{ID: 2001, Name: "Ольга's deal", ContactIDs: []int{1003}}},
	}
}

// Account is a started simulated account.
type Account struct {
	*amosim.Server
	URL string
}

// NewAccount starts a simulated account (stopped when the test ends). A zero RateLimit is off:
// most tests are not about the limit.
func NewAccount(t testing.TB, opts amosim.Options) *Account {
	t.Helper()
	if opts.Users == nil {
		opts.Seed = Seed()
	}
	if opts.RateLimit.PerSecond == 0 {
		opts.RateLimit.PerSecond = -1
	}
	s := amosim.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	u, err := s.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &Account{Server: s, URL: u}
}

// AmoConfig is the amo section for this account (OAuth; the tokens come from an install).
func (a *Account) AmoConfig() config.Amo {
	c := config.DefaultAmo()
	in := a.Integration()
	c.Account = a.URL
	c.ClientID = in.ClientID
	c.ClientSecret = config.Secret(in.ClientSecret)
	c.RedirectURI = in.RedirectURI
	c.Users = Users()
	c.RequestTimeout = 2 * time.Second
	c.AccountCheckInterval = 200 * time.Millisecond
	return c
}
