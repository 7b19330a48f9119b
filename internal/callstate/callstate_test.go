package callstate

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/internal/store"
	"github.com/ringbridge/ringbridge/internal/testenv"
)

type state struct {
	Count  int      `json:"count"`
	Done   []string `json:"done"`
	Events []string `json:"events"`
}

func newStore(t *testing.T) *Store[state] {
	st, err := store.New(context.Background(), testenv.RedisDB(t), logrus.NewEntry(logrus.New()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return New[state](st, "test-callstate", 0)
}

// TestUpdateSerializes: workers updating one call at once never lose an update.
func TestUpdateSerializes(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				err := s.Update(ctx, "pbx1", "1.1", func(_ context.Context, tx *Tx[state]) error {
					tx.State.Count++
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	got, found, err := s.Get(ctx, "pbx1", "1.1")
	if err != nil || !found || got.Count != 200 {
		t.Fatalf("count %+v found %v err %v, want 200", got, found, err)
	}
}

// TestUpdateKeepsWorkDoneBeforeAnError: what an update recorded stays recorded when it fails
// later, so the retry does not repeat it.
func TestUpdateKeepsWorkDoneBeforeAnError(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	boom := errors.New("crm said 500")
	err := s.Update(ctx, "pbx1", "2.2", func(ctx context.Context, tx *Tx[state]) error {
		tx.State.Done = append(tx.State.Done, "register")
		if err := tx.Save(ctx); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	err = s.Update(ctx, "pbx1", "2.2", func(_ context.Context, tx *Tx[state]) error {
		if !tx.Found || len(tx.State.Done) != 1 {
			t.Errorf("retry sees %+v (found %v)", tx.State, tx.Found)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSeen(t *testing.T) {
	var ids []string
	for i, c := range []struct {
		id   string
		want bool
	}{{"a", true}, {"b", true}, {"a", false}} {
		if got := Seen(&ids, c.id); got != c.want {
			t.Errorf("%d: Seen(%s) = %v", i, c.id, got)
		}
	}
}
