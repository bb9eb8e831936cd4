package tokencache

import (
	"context"
	"sync/atomic"
	"time"
)

// A Memo remembers the cache entry that served a caller's last request, so that the caller's next request for
// the same key is served from that entry without a cache lookup: the shard's lock, the index slot and the entry,
// each a cache miss once a large cache is cold, are most of what a hit costs in place. The memo lives with what
// the proxy already holds for the caller (the proven caller token, the opened session cookie).
//
// The entry says when it leaves the cache (sign-out, a CAE eviction, a flush, a renewal that replaced it, an
// eviction, expiry), and the memo then serves nothing, so a memo never serves what a lookup would not. A memo
// keeps its last entry's token alive after the cache dropped it, until the caller's next request replaces it or
// the caller is forgotten: at most one token per remembered caller.
//
// A memo holds two entries, so that a caller of two routes (Graph and another API, say) is served from it on
// both; a third key takes the second place.
//
// The zero value is empty. A Memo is safe for concurrent use; a nil *Memo remembers nothing.
type Memo struct {
	last [2]atomic.Pointer[memoized]
}

// memoized is one place of a Memo: a copy of what a hit needs, so that a hit reads this one object and not the
// record too (each a cache miss at 50,000 callers). The record reaches it when the entry leaves the cache. It is
// 128 bytes, a size class whose objects start on a cache line, so a hit reads two lines: the first says whether
// it may serve and for which key, the second holds the token (TestMemoizedIsTwoCacheLines).
type memoized struct {
	ended   atomic.Bool // the record left the cache (recordDropped)
	used    atomic.Bool // served since eviction last asked (lru.Hooks.UsedOutside)
	expires int64       // the record's
	key     Key

	header    string // the token's (see Token.withHeader); its AccessToken shares the bytes
	expiresOn int64  // the token's times in unix nanoseconds, 0 for a zero time (see unixNano)
	refreshOn int64
	rec       *record
	next      *memoized // the record's list, newest first
	depth     int32     // how many memoized the record's list holds from this one on
	_         [12]byte
}

// token is the Token p copies.
func (p *memoized) token() Token {
	return Token{AccessToken: p.header[len(bearerPrefix):], ExpiresOn: fromUnixNano(p.expiresOn),
		RefreshOn: fromUnixNano(p.refreshOn), header: p.header}
}

// unixNano is t as memoized keeps it, 0 for the zero time; fromUnixNano is its inverse. A hit's token then
// names the same instants as the cached one, in the local time zone, with no monotonic reading.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// record is a cached token as the cache holds it. Its token never changes.
type record struct {
	tok     Token
	expires int64 // unix nanoseconds, as the cache holds it: when it drops the entry; 0 never
	// memos lists the memoized made from it, newest first, for recordDropped to end them; droppedMemos once it
	// left the cache. At most maxMemosPerRecord: every caller token of one user (devices, renewals) has its own
	// memo, and a memo that alternates among three keys is listed again each time, so the list may name memoized
	// that no memo holds any more.
	memos atomic.Pointer[memoized]
}

// maxMemosPerRecord bounds a record's list; a memo past it is not kept, and its caller's hits look the cache up.
const maxMemosPerRecord = 8

// droppedMemos is a dropped record's list: nothing is added to it.
var droppedMemos = new(memoized)

// Token returns the token remembered for k while the cache still holds it and it has not expired at now. Like a
// cache hit it counts as a use of the entry, so the cache does not evict what memos keep serving.
func (m *Memo) Token(k Key, now time.Time) (Token, bool) {
	if m == nil {
		return Token{}, false
	}
	p := m.last[0].Load()
	if p == nil || p.key != k {
		if p = m.last[1].Load(); p == nil || p.key != k {
			return Token{}, false
		}
	}
	if p.ended.Load() || p.expires != 0 && now.UnixNano() >= p.expires {
		return Token{}, false
	}
	if !p.used.Load() { // a hit on a marked entry writes nothing
		p.used.Store(true)
	}
	return p.token(), true
}

// remember makes rec, found under k, the memo's entry for k: in the place k had, else the first if it is empty,
// else the second.
func (m *Memo) remember(k Key, rec *record) {
	if m == nil {
		return
	}
	slot := &m.last[1]
	if p := m.last[0].Load(); p == nil || p.key == k {
		slot = &m.last[0]
	}
	if p := slot.Load(); p != nil && p.rec == rec && p.key == k {
		return
	}
	if p := rec.memoize(k); p != nil {
		slot.Store(p)
	}
}

// memoize lists and returns a new memoized of r under k; nil when r left the cache or its list is full, which
// costs no allocation: a caller past the bound makes one on every request otherwise.
func (r *record) memoize(k Key) *memoized {
	var p *memoized
	for {
		head := r.memos.Load()
		if head == droppedMemos || head != nil && head.depth >= maxMemosPerRecord {
			return nil
		}
		if p == nil {
			p = &memoized{expires: r.expires, key: k, header: r.tok.header, expiresOn: unixNano(r.tok.ExpiresOn),
				refreshOn: unixNano(r.tok.RefreshOn), rec: r}
		}
		p.next, p.depth = head, 1
		if head != nil {
			p.depth = head.depth + 1
		}
		if r.memos.CompareAndSwap(head, p) {
			return p
		}
	}
}

// Memoizing is a TokenStore whose hits a Memo can remember: Memory, and the tiers it stands in front of.
type Memoizing interface {
	// GetMemo is Get; on a hit from this process's memory, m remembers the entry (see Memo).
	GetMemo(ctx context.Context, k Key, m *Memo) (Token, bool, error)
}

// GetMemo is Get, and on a hit m remembers the entry.
func (m *Memory) GetMemo(_ context.Context, k Key, memo *Memo) (Token, bool, error) {
	r, ok := m.entries.Get(k, m.now())
	if !ok {
		return Token{}, false, nil
	}
	memo.remember(k, r)
	return r.tok, true, nil
}

// newRecord is t as cached until exp.
func newRecord(t Token, exp time.Time) *record {
	r := &record{tok: t.withHeader()}
	if !exp.IsZero() {
		r.expires = exp.UnixNano()
	}
	return r
}

// recordDropped and recordUsedOutside are Memory's lru.Hooks: they reach the record's memos.
func recordDropped(r *record) {
	for p := r.memos.Swap(droppedMemos); p != nil && p != droppedMemos; p = p.next {
		p.ended.Store(true)
	}
}

func recordUsedOutside(r *record) bool {
	used := false
	for p := r.memos.Load(); p != nil && p != droppedMemos; p = p.next {
		if p.used.Load() && p.used.Swap(false) {
			used = true
		}
	}
	return used
}

var _ Memoizing = (*Memory)(nil)
