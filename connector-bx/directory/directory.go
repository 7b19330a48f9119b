// Package directory maps PBX extensions to Bitrix24 users: explicit overrides from config first,
// then the users' profiles (UF_PHONE_INNER of active users, read with user.get), cached in Redis
// for every replica and read again when stale or when an extension is not found. An extension
// with no user is reported — a metric, a log line naming it, and an entry in Redis that admin
// shows — never dropped in silence.
package directory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/connector-bx/bitrix"
	"github.com/ringbridge/ringbridge/internal/store"
)

// Lister lists the portal's active users (bitrix.Client).
type Lister interface {
	ActiveUsers(ctx context.Context) ([]bitrix.User, error)
}

// Options configure a Directory.
type Options struct {
	// Key is the Redis key of the cached map; unmapped extensions go to Key+":unmapped".
	Key string
	// Overrides maps extensions to users explicitly (bitrix.users); they win over profiles.
	Overrides map[string]int
	// Refresh is how old the cached map may get (default 10 minutes).
	Refresh time.Duration
	// MissRefresh is how old the map must be before an unknown extension reads it again (default
	// 1 minute), so a burst of calls to an unmapped extension costs one user.get, not one each.
	MissRefresh time.Duration
	Logger      *logrus.Entry
	Registerer  prometheus.Registerer
	Now         func() time.Time
}

// Directory answers "which user is extension X" and "which extension has user N".
type Directory struct {
	api Lister
	st  *store.Store
	opt Options
	log *logrus.Entry

	unmapped *prometheus.CounterVec
	loads    *prometheus.CounterVec

	mu      sync.Mutex
	snap    snapshot
	fetched time.Time // when snap was read from Redis
}

// snapshot is the cached map as stored in Redis.
type snapshot struct {
	Users    map[string]int `json:"users"`
	LoadedAt time.Time      `json:"loaded_at"`
}

// Unmapped is an extension seen on a call with no user, as stored for admin.
type Unmapped struct {
	Extension string    `json:"extension"`
	LastSeen  time.Time `json:"last_seen"`
	CallID    string    `json:"call_id"`
}

// New builds a Directory.
func New(api Lister, st *store.Store, opt Options) *Directory {
	if opt.Refresh <= 0 {
		opt.Refresh = 10 * time.Minute
	}
	if opt.MissRefresh <= 0 {
		opt.MissRefresh = time.Minute
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	d := &Directory{api: api, st: st, opt: opt, log: opt.Logger.WithField("component", "directory"),
		unmapped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringbridge_connector_bx_unmapped_extension_total",
			Help: "Calls on which an extension had no Bitrix24 user (set the user's Internal phone, UF_PHONE_INNER, or map it in bitrix.users).",
		}, []string{"extension"}),
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringbridge_connector_bx_directory_loads_total",
			Help: "Reads of the user directory from Bitrix24 (user.get), by outcome.",
		}, []string{"outcome"}),
	}
	if opt.Registerer != nil {
		for _, c := range []prometheus.Collector{d.unmapped, d.loads} {
			if err := opt.Registerer.Register(c); err != nil {
				if _, ok := err.(prometheus.AlreadyRegisteredError); !ok {
					panic(err)
				}
			}
		}
	}
	return d
}

// User returns the user of an extension. ok is false when it has none; the miss is then reported
// (callID names the call in the report). An error means the directory could not be read at all.
func (d *Directory) User(ctx context.Context, ext, callID string) (id int, ok bool, err error) {
	if ext == "" {
		return 0, false, nil
	}
	if id, ok := d.opt.Overrides[ext]; ok {
		return id, true, nil
	}
	snap, err := d.current(ctx, d.opt.Refresh)
	if err != nil {
		return 0, false, err
	}
	if id, ok := snap.Users[ext]; ok {
		return id, true, nil
	}
	// Not found: someone may have set the extension in a profile since.
	if d.opt.Now().Sub(snap.LoadedAt) >= d.opt.MissRefresh {
		if snap, err = d.current(ctx, d.opt.MissRefresh); err == nil {
			if id, ok := snap.Users[ext]; ok {
				return id, true, nil
			}
		}
	}
	d.report(ctx, ext, callID)
	return 0, false, nil
}

// Extension returns the extension of a user (click-to-call rings it).
func (d *Directory) Extension(ctx context.Context, userID int) (string, bool, error) {
	for ext, id := range d.opt.Overrides {
		if id == userID {
			return ext, true, nil
		}
	}
	snap, err := d.current(ctx, d.opt.Refresh)
	if err != nil {
		return "", false, err
	}
	best := ""
	for ext, id := range snap.Users {
		if id == userID && (best == "" || ext < best) {
			best = ext
		}
	}
	if best == "" && d.opt.Now().Sub(snap.LoadedAt) >= d.opt.MissRefresh {
		if snap, err = d.current(ctx, d.opt.MissRefresh); err == nil {
			for ext, id := range snap.Users {
				if id == userID && (best == "" || ext < best) {
					best = ext
				}
			}
		}
	}
	return best, best != "", nil
}

// current returns a map no older than maxAge: this process's copy, Redis's, or a new one from
// user.get — read by one replica at a time while the others keep using the old one.
func (d *Directory) current(ctx context.Context, maxAge time.Duration) (snapshot, error) {
	now := d.opt.Now()
	d.mu.Lock()
	snap, fetched := d.snap, d.fetched
	d.mu.Unlock()
	if snap.Users != nil && now.Sub(snap.LoadedAt) < maxAge && now.Sub(fetched) < 15*time.Second {
		return snap, nil
	}
	var stored snapshot
	if found, err := d.st.GetJSON(ctx, d.opt.Key, &stored); err != nil {
		if snap.Users != nil {
			return snap, nil
		}
		return snapshot{}, fmt.Errorf("user directory: %w", err)
	} else if found && stored.Users != nil {
		d.keep(stored, now)
		if now.Sub(stored.LoadedAt) < maxAge {
			return stored, nil
		}
		snap = stored
	}
	lock, ok, err := d.st.TryLock(ctx, d.opt.Key+":lock", time.Minute)
	if err != nil || !ok {
		if snap.Users != nil {
			return snap, nil // another replica is reading it; the old map will do
		}
		if err == nil {
			// Nothing to fall back on: wait for the replica that reads it.
			if lock, err = d.st.Lock(ctx, d.opt.Key+":lock", time.Minute); err != nil {
				return snapshot{}, fmt.Errorf("user directory: %w", err)
			}
			defer lock.Release(context.WithoutCancel(ctx))
			if found, _ := d.st.GetJSON(ctx, d.opt.Key, &stored); found && stored.Users != nil {
				d.keep(stored, d.opt.Now())
				return stored, nil
			}
			return d.load(ctx, snap)
		}
		return snapshot{}, fmt.Errorf("user directory: %w", err)
	}
	defer lock.Release(context.WithoutCancel(ctx))
	return d.load(ctx, snap)
}

func (d *Directory) load(ctx context.Context, old snapshot) (snapshot, error) {
	users, err := d.api.ActiveUsers(ctx)
	if err != nil {
		d.loads.WithLabelValues("error").Inc()
		if old.Users != nil {
			d.log.WithError(err).Warn("cannot read the user directory from Bitrix24; using the one read at " + old.LoadedAt.UTC().Format(time.RFC3339))
			return old, nil
		}
		return snapshot{}, fmt.Errorf("reading the user directory (user.get): %w", err)
	}
	d.loads.WithLabelValues("ok").Inc()
	snap := snapshot{Users: map[string]int{}, LoadedAt: d.opt.Now()}
	for _, u := range users {
		if !u.Active || u.Inner == "" || u.ID <= 0 {
			continue
		}
		if prev, dup := snap.Users[u.Inner]; dup && prev != u.ID {
			d.log.WithFields(logrus.Fields{"extension": u.Inner, "user_id": u.ID, "other_user_id": prev}).
				Warn("two Bitrix24 users have the same Internal phone; the one with the lower id is used")
			if prev < u.ID {
				continue
			}
		}
		snap.Users[u.Inner] = u.ID
	}
	if err := d.st.SetJSON(ctx, d.opt.Key, snap, 0); err != nil {
		d.log.WithError(err).Warn("cannot cache the user directory in Redis")
	}
	d.keep(snap, d.opt.Now())
	d.log.WithField("users", len(snap.Users)).Info("user directory read from Bitrix24")
	return snap, nil
}

func (d *Directory) keep(s snapshot, at time.Time) {
	d.mu.Lock()
	d.snap, d.fetched = s, at
	d.mu.Unlock()
}

func (d *Directory) report(ctx context.Context, ext, callID string) {
	d.unmapped.WithLabelValues(ext).Inc()
	d.log.WithFields(logrus.Fields{"extension": ext, "call_id": callID}).
		Warn("extension " + ext + " has no Bitrix24 user: set it as the Internal phone (UF_PHONE_INNER) of an active user, or map it in bitrix.users")
	u := Unmapped{Extension: ext, LastSeen: d.opt.Now().UTC(), CallID: callID}
	if err := d.st.Client().HSet(ctx, d.opt.Key+":unmapped", ext, mustJSON(u)).Err(); err != nil {
		d.log.WithError(err).Debug("cannot record the unmapped extension")
	}
}

// Unmapped lists the extensions seen without a user, for admin.
func (d *Directory) Unmapped(ctx context.Context) ([]Unmapped, error) {
	m, err := d.st.Client().HGetAll(ctx, d.opt.Key+":unmapped").Result()
	if err != nil {
		return nil, fmt.Errorf("unmapped extensions: %w", err)
	}
	out := make([]Unmapped, 0, len(m))
	for _, v := range m {
		var u Unmapped
		if unmarshalJSON(v, &u) == nil {
			out = append(out, u)
		}
	}
	return out, nil
}
