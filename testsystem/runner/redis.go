package runner

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// The services keep their state in a Redis database of their own for the run, emptied before
// each suite (tokens, call states, the number memos of connector-amo would otherwise leak from one
// suite into the next). It is leased the way internal/testenv leases databases to Go tests —
// the same keys in database 0 — so a run and `go test ./...` on the same Redis never share one.
const (
	redisLeasePrefix = "ringbridge:testenv:db:"
	redisLeaseTTL    = 45 * time.Minute
)

// redisDB is a leased database.
type redisDB struct {
	admin *redis.Client
	db    *redis.Client
	num   int
	key   string
	owner string
}

// leaseRedisDB takes the first free database above 0.
func leaseRedisDB(ctx context.Context, addr string) (*redisDB, error) {
	admin := newRedisClient(addr, 0)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := admin.Ping(pctx).Err(); err != nil {
		admin.Close()
		return nil, fmt.Errorf("redis at %s does not answer (%v): start it (bash .ci/run services)", addr, err)
	}
	count := 16
	if v, err := admin.ConfigGet(pctx, "databases").Result(); err == nil {
		if n, err := strconv.Atoi(v["databases"]); err == nil && n > 1 {
			count = n
		}
	}
	host, _ := os.Hostname()
	// host:pid:name is testenv's owner format: its takeover of a dead process's lease works on ours.
	owner := fmt.Sprintf("%s:%d:testsystem-run", host, os.Getpid())
	deadline := time.Now().Add(2 * time.Minute)
	for {
		// From the top down: the Go tests lease from 1 up, so the two rarely even meet.
		for n := count - 1; n >= 1; n-- {
			key := redisLeasePrefix + strconv.Itoa(n)
			ok, err := admin.SetNX(ctx, key, owner, redisLeaseTTL).Result()
			if err != nil {
				admin.Close()
				return nil, fmt.Errorf("leasing a redis database at %s: %w", addr, err)
			}
			if ok {
				db := newRedisClient(addr, n)
				return &redisDB{admin: admin, db: db, num: n, key: key, owner: owner}, nil
			}
		}
		if time.Now().After(deadline) {
			admin.Close()
			return nil, fmt.Errorf("every redis database at %s is leased (keys %s* in database 0): start redis with more databases (--databases 64, as .ci/run does)", addr, redisLeasePrefix)
		}
		select {
		case <-ctx.Done():
			admin.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// flush empties the database.
func (r *redisDB) flush(ctx context.Context) error {
	if err := r.db.FlushDB(ctx).Err(); err != nil {
		return fmt.Errorf("emptying redis database %d: %w", r.num, err)
	}
	return nil
}

// release empties the database and frees the lease if it is still ours.
func (r *redisDB) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.db.FlushDB(ctx).Err()
	_ = r.admin.Eval(ctx, `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`, []string{r.key}, r.owner).Err()
	r.db.Close()
	r.admin.Close()
}

func newRedisClient(addr string, db int) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:        addr,
		DB:          db,
		DialTimeout: 2 * time.Second,
		MaxRetries:  1,
		// Maintenance notifications are a Redis Cloud feature; the Debian server answers the
		// handshake with an error line the client would log.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
}
