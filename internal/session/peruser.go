package session

import (
	"slices"
	"sync"
	"time"

	"github.com/tokeninjector/caddy-token-injector/internal/lru"
)

// MaxSessionsPerUser bounds one user's sessions in every store. A sign-in beyond it ends that user's oldest
// session, so that one account signing in again and again (a script with a stolen password, or a loop in a
// client) ends its own sessions, not, by filling the store, everybody else's.
const MaxSessionsPerUser = 32

// userSessions lists a user's sessions (ID and sign-in time) for the per-user bound. An ID may outlive its
// session here (a logout, an expiry); the list is pruned against the store when it is next over the bound.
type userSessions []sessionRef

type sessionRef struct {
	id      string
	created time.Time
}

// userIndex is the memory store's list of each user's sessions. It is bounded as the store is: a user whose list
// it evicts has had no sign-in since the store's capacity of others did, so few of the user's sessions are left.
type userIndex struct {
	mu    sync.Mutex // sign-ins are rare; one lock keeps a user's list and the store's entries in step
	users *lru.Cache[string, userSessions]
}

func newUserIndex(max int) userIndex { return userIndex{users: lru.New[string, userSessions](max)} }

// add lists v under its user and returns the IDs of the sessions beyond the bound, oldest first: those that
// live (live reports it) and were created before the newest MaxSessionsPerUser.
func (x *userIndex) add(v Session, now time.Time, live func(id string) bool) []string {
	if v.UserKey == "" {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	list, _ := x.users.Get(v.UserKey, now)
	if slices.ContainsFunc(list, func(r sessionRef) bool { return r.id == v.ID }) {
		return nil // the same session stored again: a replica's L1 keeping what it read from Redis
	}
	list = append(slices.Clip(list), sessionRef{id: v.ID, created: v.CreatedAt})
	var over []string
	if len(list) > MaxSessionsPerUser {
		list = slices.DeleteFunc(list, func(r sessionRef) bool { return r.id != v.ID && !live(r.id) })
		slices.SortStableFunc(list, func(a, b sessionRef) int { return a.created.Compare(b.created) })
		for len(list) > MaxSessionsPerUser {
			over, list = append(over, list[0].id), list[1:]
		}
	}
	x.users.Add(v.UserKey, list, time.Time{})
	return over
}

// forget drops the user's list: every session of the user ended.
func (x *userIndex) forget(userKey string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.users.Remove(userKey)
}

// clear drops every list.
func (x *userIndex) clear() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.users.RemoveFunc(func(string, userSessions) bool { return true })
}
