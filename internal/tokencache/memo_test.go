package tokencache

import (
	"testing"
	"time"
	"unsafe"
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

// TestMemoizedIsTwoCacheLines holds memoized to the layout its comment promises: 128 bytes (a size class whose
// objects start on a cache line), with the token's fields on the second line.
func TestMemoizedIsTwoCacheLines(t *testing.T) {
	var p memoized
	if size, header := unsafe.Sizeof(p), unsafe.Offsetof(p.header); size != 128 || header != 64 {
		t.Errorf("memoized is %d bytes with its header at %d; want 128 and 64", size, header)
	}
}

func TestMemoHitNamesTheCachedTokensInstants(t *testing.T) {
	now := time.Now()
	for _, tok := range []Token{
		{AccessToken: "a", ExpiresOn: now.Add(time.Hour), RefreshOn: now.Add(30 * time.Minute)},
		{AccessToken: "b", ExpiresOn: now.Add(time.Hour).UTC()}, // no RefreshOn: it stays the zero time
	} {
		c := NewMemory(10, 0, nil)
		k := Key{User: "u", Scopes: tok.AccessToken}
		if err := c.Set(t.Context(), k, tok); err != nil {
			t.Fatal(err)
		}
		var m Memo
		if _, ok, _ := c.GetMemo(t.Context(), k, &m); !ok {
			t.Fatal("no entry")
		}
		got, ok := m.Token(k, now)
		switch {
		case !ok:
			t.Fatal("the memo served nothing")
		case got.AccessToken != tok.AccessToken || got.AuthorizationHeader() != "Bearer "+tok.AccessToken:
			t.Errorf("token %q, header %q", got.AccessToken, got.AuthorizationHeader())
		case !got.ExpiresOn.Equal(tok.ExpiresOn) || !got.RefreshOn.Equal(tok.RefreshOn) ||
			got.RefreshOn.IsZero() != tok.RefreshOn.IsZero():
			t.Errorf("expires %v refresh %v; want %v and %v", got.ExpiresOn, got.RefreshOn, tok.ExpiresOn, tok.RefreshOn)
		}
	}
}
