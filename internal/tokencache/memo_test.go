package tokencache

import (
	"testing"
	"time"
)

// A caller past the record's list bound is served by lookups, and those lookups allocate nothing: a memoized made
// and refused on every request would be garbage at the request rate of that caller.
func TestMemoPastTheBoundIsServedWithoutAllocating(t *testing.T) {
	m := NewMemory(10, 0, nil)
	k := Key{User: "u", Scopes: "s"}
	if err := m.Set(t.Context(), k, Token{AccessToken: "t", ExpiresOn: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	memos := make([]Memo, maxMemosPerRecord+1)
	for i := range memos {
		if _, ok, _ := m.GetMemo(t.Context(), k, &memos[i]); !ok {
			t.Fatalf("caller %d: no entry", i)
		}
	}
	last := &memos[maxMemosPerRecord]
	if _, ok := last.Token(k, time.Now()); ok {
		t.Fatal("a memo past the bound was kept")
	}
	allocs := testing.AllocsPerRun(100, func() {
		if tok, ok, _ := m.GetMemo(t.Context(), k, last); !ok || tok.AccessToken != "t" {
			t.Fatal("the caller past the bound is not served")
		}
	})
	if allocs != 0 {
		t.Fatalf("a lookup past the bound allocates %.0f times", allocs)
	}
}
