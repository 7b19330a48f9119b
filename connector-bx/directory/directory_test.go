package directory

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/connector-bx/bitrix"
	"github.com/ringbridge/ringbridge/internal/store"
	"github.com/ringbridge/ringbridge/internal/testenv"
)

// fakeLister is the portal's user list, counting reads.
type fakeLister struct {
	mu    sync.Mutex
	users []bitrix.User
	reads int
	err   error
}

func (f *fakeLister) ActiveUsers(context.Context) ([]bitrix.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return append([]bitrix.User(nil), f.users...), f.err
}

func (f *fakeLister) set(us ...bitrix.User) {
	f.mu.Lock()
	f.users = us
	f.mu.Unlock()
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newDir(t *testing.T, api Lister, clk *clock, overrides map[string]int) (*Directory, *store.Store) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	st, err := store.New(context.Background(), testenv.RedisDB(t), logrus.NewEntry(l))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return New(api, st, Options{Key: "t:users", Overrides: overrides, Logger: logrus.NewEntry(l), Now: clk.now}), st
}

func TestUser(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	api := &fakeLister{users: []bitrix.User{{ID: 1, Active: true, Inner: "101"}, {ID: 2, Active: false, Inner: "102"}, {ID: 5, Active: true, Inner: "105"}, {ID: 3, Active: true, Inner: "105"}}}
	d, st := newDir(t, api, clk, map[string]int{"109": 9, "105": 7})
	cases := []struct {
		name string
		ext  string
		id   int
		ok   bool
	}{
		{"profile", "101", 1, true},
		{"inactive-user-not-used", "102", 0, false},
		{"override-wins", "105", 7, true},
		{"override-only", "109", 9, true},
		{"unknown", "199", 0, false},
		{"empty", "", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, ok, err := d.User(ctx, tc.ext, "c1")
			if err != nil || id != tc.id || ok != tc.ok {
				t.Fatalf("User(%q) = %d %v %v, want %d %v", tc.ext, id, ok, err, tc.id, tc.ok)
			}
		})
	}
	t.Run("extension-of-user", func(t *testing.T) {
		if ext, ok, _ := d.Extension(ctx, 1); ext != "101" || !ok {
			t.Fatalf("Extension(1) = %q %v", ext, ok)
		}
		if ext, ok, _ := d.Extension(ctx, 9); ext != "109" || !ok {
			t.Fatalf("Extension(9) = %q %v", ext, ok)
		}
	})
	t.Run("duplicate-extension-lower-id", func(t *testing.T) {
		d2 := New(api, st, Options{Key: "t:users2", Logger: d.log, Now: clk.now})
		if id, _, _ := d2.User(ctx, "105", "c"); id != 3 {
			t.Fatalf("105 -> %d, want 3", id)
		}
	})
	t.Run("unknown-reported", func(t *testing.T) {
		un, err := d.Unmapped(ctx)
		if err != nil || len(un) != 2 { // 102 and 199
			t.Fatalf("unmapped %+v %v", un, err)
		}
	})
}

// TestRefresh: a user who sets an extension is found without waiting for the periodic refresh,
// but a burst of calls to an unknown extension reads user.get once a minute at most; a second
// replica uses the map in Redis; a failed read keeps the old map.
func TestRefresh(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	api := &fakeLister{users: []bitrix.User{{ID: 1, Active: true, Inner: "101"}}}
	d, st := newDir(t, api, clk, nil)
	if _, ok, _ := d.User(ctx, "101", "c"); !ok || api.reads != 1 {
		t.Fatalf("first read: ok %v reads %d", ok, api.reads)
	}
	api.set(bitrix.User{ID: 1, Active: true, Inner: "101"}, bitrix.User{ID: 2, Active: true, Inner: "102"})
	for range 10 {
		if _, ok, _ := d.User(ctx, "102", "c"); ok {
			t.Fatal("found before a refresh")
		}
	}
	if api.reads != 1 {
		t.Fatalf("%d reads for a burst of misses", api.reads)
	}
	clk.add(61 * time.Second)
	if id, ok, _ := d.User(ctx, "102", "c"); !ok || id != 2 || api.reads != 2 {
		t.Fatalf("after a minute: %d %v, reads %d", id, ok, api.reads)
	}
	replica := New(api, st, Options{Key: "t:users", Logger: d.log, Now: clk.now})
	if id, ok, _ := replica.User(ctx, "102", "c"); !ok || id != 2 || api.reads != 2 {
		t.Fatalf("replica: %d %v, reads %d", id, ok, api.reads)
	}
	api.err = errors.New("portal down")
	clk.add(11 * time.Minute)
	if id, ok, err := d.User(ctx, "101", "c"); !ok || id != 1 || err != nil {
		t.Fatalf("stale map not used when the portal is down: %d %v %v", id, ok, err)
	}
}
