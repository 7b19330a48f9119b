package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/testsystem/amisim"
)

const amisimUsage = `usage: testsystem amisim --secret S [flags]

Serves AMI like an Asterisk PBX (user --user, password --secret) and plays calls to the clients
that log in: recorded .ami transcripts and generated scenarios (.yaml), one after another, each
with fresh ids and moved to the time it starts, the next starting --gap before the previous ends.
Prints one line per call. Runs until interrupted (SIGINT, SIGTERM).

flags:
`

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// amisimFlags are the subcommand's settings.
type amisimFlags struct {
	listen, user, secret string
	play, scenarios      stringList
	loop, timestamps     bool
	speed                float64
	gap                  time.Duration
	style                string
	originate            string
}

func parseAMISimFlags(args []string, stderr io.Writer) (*amisimFlags, error) {
	f := &amisimFlags{}
	fs := flag.NewFlagSet("amisim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, amisimUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.listen, "listen", "127.0.0.1:5038", "address to serve AMI on")
	fs.StringVar(&f.user, "user", "crm", "AMI username")
	fs.StringVar(&f.secret, "secret", "", "AMI password (required)")
	fs.Var(&f.play, "play", "a recording (.ami), a scenario (.yaml) or a folder of them; repeatable")
	fs.Var(&f.scenarios, "scenarios", "a folder of scenarios (.yaml); repeatable")
	fs.BoolVar(&f.loop, "loop", false, "start over after the last call, forever")
	fs.Float64Var(&f.speed, "speed", 1, "playback speed: 1 real time, 10 ten times faster, 0 as fast as possible")
	fs.DurationVar(&f.gap, "gap", 2*time.Second, "how long consecutive calls overlap (negative: a pause between them)")
	fs.BoolVar(&f.timestamps, "timestamps", false, "add Timestamp: to events, as timestampevents=yes does")
	fs.StringVar(&f.style, "style", "", "generate every scenario in this style (local or pjsip) instead of its own")
	fs.StringVar(&f.originate, "originate", "", "the click-to-call scenario (.yaml) that answers Originate actions (default: the phone rings 3 s, the number 5 s, talk 30 s)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected argument %q: files go after --play", fs.Arg(0))
	case f.secret == "":
		return nil, errors.New("--secret is required: the password clients log in with")
	case f.speed < 0:
		return nil, fmt.Errorf("--speed %g: write 0 (as fast as possible) or more", f.speed)
	case f.style != "" && f.style != string(amisim.StyleLocal) && f.style != string(amisim.StylePJSIP):
		return nil, fmt.Errorf("--style %q: write local or pjsip", f.style)
	case f.loop && len(f.play)+len(f.scenarios) == 0:
		return nil, errors.New("--loop needs calls: give --play or --scenarios")
	}
	return f, nil
}

// callSource makes one call to play: a recording copied with fresh ids and retimed, or a
// scenario generated at the time it starts.
type callSource struct {
	name string
	path string
	rec  *amisim.Recording
	sc   *amisim.Scenario
}

func (s *callSource) kind() string {
	if s.rec != nil {
		return "recording"
	}
	return "scenario"
}

// make returns the n-th played call from this source, starting at now.
func (s *callSource) make(gen *amisim.Generator, n int, now time.Time) (*amisim.Recording, error) {
	if s.rec != nil {
		// Fresh numbers copies 1..~500000; past that, ids may repeat, but in other seconds.
		return s.rec.Fresh((n-1)%400000 + 1).Retime(now), nil
	}
	return gen.Generate(s.sc, now)
}

// loadSources reads --play and --scenarios in order; a folder gives its files in name order.
func loadSources(f *amisimFlags) ([]*callSource, error) {
	var out []*callSource
	add := func(path string, scenariosOnly bool) error {
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		files := []string{path}
		if st.IsDir() {
			entries, err := os.ReadDir(path)
			if err != nil {
				return err
			}
			files = files[:0]
			for _, e := range entries {
				if !e.IsDir() {
					files = append(files, filepath.Join(path, e.Name()))
				}
			}
			sort.Strings(files)
		}
		found := 0
		for _, file := range files {
			switch ext := filepath.Ext(file); {
			case ext == ".ami" && !scenariosOnly:
				rec, err := amisim.LoadRecording(file)
				if err != nil {
					return err
				}
				out = append(out, &callSource{name: rec.Name, path: file, rec: rec})
			case ext == ".yaml" || ext == ".yml":
				sc, err := amisim.LoadScenario(file)
				if err != nil {
					return err
				}
				if f.style != "" {
					sc.Style = amisim.Style(f.style)
				}
				out = append(out, &callSource{name: sc.Name, path: file, sc: sc})
			case !st.IsDir():
				return fmt.Errorf("%s: not a recording (.ami) or a scenario (.yaml)", file)
			default:
				continue
			}
			found++
		}
		if found == 0 {
			return fmt.Errorf("%s: no recordings (.ami) or scenarios (.yaml) in it", path)
		}
		return nil
	}
	for _, p := range f.play {
		if err := add(p, false); err != nil {
			return nil, fmt.Errorf("--play: %w", err)
		}
	}
	for _, p := range f.scenarios {
		if err := add(p, true); err != nil {
			return nil, fmt.Errorf("--scenarios: %w", err)
		}
	}
	return out, nil
}

// runAMISim is `testsystem amisim`.
func runAMISim(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseAMISimFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "testsystem amisim: %v\n", err)
		return 2
	}
	sources, err := loadSources(f)
	if err != nil {
		fmt.Fprintf(stderr, "testsystem amisim: %v\n", err)
		return 2
	}
	log := logrus.New()
	log.SetOutput(stderr)
	log.SetLevel(logrus.WarnLevel)
	srv := amisim.New(amisim.Config{
		Users:      map[string]amisim.User{f.user: {Secret: f.secret}},
		Logger:     log,
		Timestamps: f.timestamps,
	})
	if err := srv.Listen(f.listen); err != nil {
		fmt.Fprintf(stderr, "testsystem amisim: %v\n", err)
		return 1
	}
	defer srv.Close()
	gen := amisim.NewGenerator()
	c2c, err := originateScenario(f.originate)
	if err != nil {
		fmt.Fprintf(stderr, "testsystem amisim: --originate: %v\n", err)
		return 2
	}
	srv.OriginateScenario(gen, c2c, f.speed)
	out := &lineWriter{w: stdout}
	out.printf("amisim: listening on %s (user %s), %d calls to play", srv.Addr(), f.user, len(sources))
	err = playCalls(ctx, srv, gen, sources, f, out)
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, amisim.ErrClosed) {
		fmt.Fprintf(stderr, "testsystem amisim: %v\n", err)
		return 1
	}
	if ctx.Err() == nil {
		out.printf("amisim: all calls played; serving until interrupted")
		<-ctx.Done()
	}
	out.printf("amisim: stopping")
	return 0
}

// defaultClickToCall answers a CRM's Originate: the phone rings 3 s, the number 5 s, they talk
// 30 s and the employee hangs up.
const defaultClickToCall = `direction: outbound
from: "100"
to: "89000000000"
click_to_call: {phone: answer, phone_ring: 3s}
answer: {after: 5s}
talk: 30s
hangup: caller
`

func originateScenario(path string) (*amisim.Scenario, error) {
	if path == "" {
		return amisim.ParseScenario([]byte(defaultClickToCall))
	}
	return amisim.LoadScenario(path)
}

// playCalls plays the sources one after another (forever with --loop), each call starting --gap
// before the previous one ends.
func playCalls(ctx context.Context, srv *amisim.Server, gen *amisim.Generator, sources []*callSource, f *amisimFlags, out *lineWriter) error {
	if len(sources) == 0 {
		return nil
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	errs := make(chan error, 1)
	n := 0
	for {
		for _, s := range sources {
			n++
			now := time.Now()
			rec, err := s.make(gen, n, now)
			if err != nil {
				return fmt.Errorf("%s: %w", s.path, err)
			}
			out.printf("call %d: %s %s (%s), %d events, %s, Linkedid %s", n, s.kind(), s.name, s.path,
				rec.Len(), rec.Duration().Round(time.Second), firstLinkedid(rec))
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := srv.Play(ctx, rec, f.speed); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}()
			wait := rec.Duration() - f.gap
			if f.speed > 0 {
				wait = time.Duration(float64(wait) / f.speed)
			}
			if wait < 0 {
				wait = 0
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case err := <-errs:
				return err
			case <-time.After(wait):
			}
		}
		if !f.loop {
			wg.Wait()
			select {
			case err := <-errs:
				return err
			default:
				return nil
			}
		}
	}
}

// firstLinkedid names the call: the Linkedid of its first channel.
func firstLinkedid(rec *amisim.Recording) string {
	for _, m := range rec.Messages() {
		if v := m.Get("Linkedid"); v != "" {
			return v
		}
	}
	return "?"
}

// lineWriter prints whole lines from several goroutines, each with the time.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}
