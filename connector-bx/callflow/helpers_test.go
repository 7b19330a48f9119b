package callflow_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"gopkg.in/yaml.v3"

	"github.com/ringbridge/ringbridge/ami-gateway/replay"
	"github.com/ringbridge/ringbridge/connector-bx/bitrix"
	"github.com/ringbridge/ringbridge/connector-bx/callflow"
	"github.com/ringbridge/ringbridge/connector-bx/directory"
	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/store"
	"github.com/ringbridge/ringbridge/internal/testenv"
	"github.com/ringbridge/ringbridge/testsystem/crmsim"
	bxsim "github.com/ringbridge/ringbridge/testsystem/crmsim/bitrix"
)

const fixtures = "../../../shared/fixtures/ami-asterisk22"

// fixtureEvents are the call events the gateway makes of a real Asterisk 22 recording.
func fixtureEvents(t testing.TB, name string) []*callevent.Event {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(fixtures, "replay.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rc struct {
		PBX      string          `yaml:"pbx"`
		Classify config.Classify `yaml:"classify"`
	}
	if err := yaml.Unmarshal(raw, &rc); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(fixtures, name+".ami"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	if _, err := replay.Run(f, &out, replay.Options{PBX: rc.PBX, Classify: rc.Classify}); err != nil {
		t.Fatal(err)
	}
	var evs []*callevent.Event
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		ev, err := callevent.Unmarshal(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		t.Fatalf("%s: no events", name)
	}
	return evs
}

// fixtureNames are every recording in the fixture folder.
func fixtureNames(t testing.TB) []string {
	files, _ := filepath.Glob(filepath.Join(fixtures, "*.ami"))
	if len(files) == 0 {
		t.Fatal("no recordings in " + fixtures)
	}
	var out []string
	for _, f := range files {
		out = append(out, strings.TrimSuffix(filepath.Base(f), ".ami"))
	}
	return out
}

// simUsers are the fixture PBX's extensions 101..108 as users 1..8.
func simUsers() []bxsim.User {
	var us []bxsim.User
	for i := 1; i <= 8; i++ {
		us = append(us, bxsim.User{ID: i, Name: fmt.Sprint("User", i), PhoneInner: fmt.Sprint(100 + i), Admin: i == 1})
	}
	return us
}

// harness is a portal, a Redis database and the connector's pieces on them.
type harness struct {
	t      *testing.T
	sim    *bxsim.Server
	st     *store.Store
	inst   bxsim.Install
	cfg    config.Bitrix
	logs   *testenv.Buffer
	recDir string
}

func newHarness(t *testing.T, simOpts bxsim.Options, mod func(*config.Bitrix)) *harness {
	t.Helper()
	if simOpts.Users == nil {
		simOpts.Users = simUsers()
	}
	sim := bxsim.New(simOpts)
	if err := sim.Start(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	logs := &testenv.Buffer{}
	st, err := store.New(context.Background(), testenv.RedisDB(t), logger(logs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	inst, err := sim.IssueInstall(bxsim.InstallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.DefaultBitrix()
	cfg.Portal = sim.URL()
	cfg.App.ClientID, cfg.App.ClientSecret, cfg.App.OAuthServer = inst.ClientID, config.Secret(inst.ClientSecret), sim.URL()
	h := &harness{t: t, sim: sim, st: st, inst: inst, cfg: cfg, logs: logs, recDir: t.TempDir()}
	h.cfg.Recordings.Folder = h.recDir
	if mod != nil {
		mod(&h.cfg)
	}
	ts := bitrix.NewTokenStore(st, "test", sim.URL())
	if err := ts.Save(context.Background(), bitrix.Tokens{AccessToken: inst.AccessToken, RefreshToken: inst.RefreshToken,
		ApplicationToken: inst.ApplicationToken, InstalledAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return h
}

func logger(out *testenv.Buffer) *logrus.Entry {
	l := logrus.New()
	l.SetOutput(out)
	l.SetLevel(logrus.DebugLevel)
	l.SetFormatter(&logrus.JSONFormatter{})
	return logrus.NewEntry(l)
}

// replica is one connector: its own client, directory and flow on the shared portal and Redis.
type replica struct {
	client *bitrix.Client
	dir    *directory.Directory
	flow   *callflow.Flow
}

func (h *harness) replica() replica {
	h.t.Helper()
	opt := bitrix.OptionsFrom(h.cfg)
	opt.Store, opt.Prefix, opt.Logger, opt.RetryBase = h.st, "test", logger(h.logs), 10*time.Millisecond
	c, err := bitrix.New(opt)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(c.Close)
	overrides := map[string]int{}
	for _, u := range h.cfg.Users {
		overrides[u.Extension] = u.UserID
	}
	dir := directory.New(c, h.st, directory.Options{Key: "test:users", Overrides: overrides, Logger: logger(h.logs)})
	fl := callflow.New(callflow.Options{Config: h.cfg, Country: "RU", Prefix: "test", Logger: logger(h.logs)}, c, dir, h.st)
	return replica{client: c, dir: dir, flow: fl}
}

// writeRecordings puts a file for every recording the events name into the recordings folder.
func (h *harness) writeRecordings(evs []*callevent.Event) {
	for _, ev := range evs {
		if ev.Recording != "" {
			if err := os.WriteFile(filepath.Join(h.recDir, filepath.Base(ev.Recording)), []byte("RIFF....WAVE"+ev.CallID), 0o600); err != nil {
				h.t.Fatal(err)
			}
		}
	}
}

// journal is the telephony commands the portal received, batches expanded, one line each in a
// form the tests write by hand: "register user=1 type=2 ...", "show 1", "hide 1,2", "finish ...".
func (h *harness) journal() []string {
	var out []string
	for _, r := range bxsim.ExpandBatch(h.sim.Requests(0)) {
		if line := describe(r); line != "" {
			out = append(out, line)
		}
	}
	return out
}

func describe(r crmsim.Request) string {
	p := r.Params
	switch r.Method {
	case "telephony.externalcall.register":
		return fmt.Sprintf("register user=%s type=%s phone=%s line=%s ext=%s show=%s", p["USER_ID"], p["TYPE"], p["PHONE_NUMBER"], p["LINE_NUMBER"], p["EXTERNAL_CALL_ID"], p["SHOW"])
	case "telephony.externalcall.show", "telephony.externalcall.hide":
		return strings.TrimPrefix(r.Method, "telephony.externalcall.") + " " + userList(p)
	case "telephony.externalcall.finish":
		return fmt.Sprintf("finish user=%s status=%s duration=%s", p["USER_ID"], p["STATUS_CODE"], p["DURATION"])
	case "telephony.externalcall.attachrecord":
		mode := "url"
		if p["FILE_CONTENT"] != "" {
			mode = "content"
		} else if p["RECORD_URL"] == "" {
			mode = "upload-url"
		}
		return "attachRecord " + mode + " " + p["FILENAME"]
	}
	return ""
}

func userList(p map[string]string) string {
	if v := p["USER_ID"]; v != "" {
		return v
	}
	var us []string
	for k, v := range p {
		if strings.HasPrefix(k, "USER_ID[") {
			us = append(us, v)
		}
	}
	sort.Strings(us)
	return strings.Join(us, ",")
}

func count(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func handleAll(t *testing.T, fl *callflow.Flow, evs []*callevent.Event) {
	t.Helper()
	ctx := ctxT(t, 60*time.Second)
	for _, ev := range evs {
		if err := fl.Handle(ctx, ev); err != nil {
			t.Fatalf("%s: %v", ev.ID, err)
		}
	}
}

// okServer is a handler URL that accepts anything (the simulator's events need one).
func okServer(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func equalLines(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("journal:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
