package seal

import (
	"strings"
	"testing"
)

// The same bytes get one tag under one Tagger, values differing in one byte or in length get two, and another
// Tagger (another key) tags the same value differently.
func TestTagsTellValuesApart(t *testing.T) {
	a, b := newTagger(t), newTagger(t)
	v := strings.Repeat("a", 1600)
	for _, other := range []string{strings.Repeat("a", 1599) + "b", strings.Repeat("a", 1599), "b" + v[1:], ""} {
		if a.Of(v) == a.Of(other) {
			t.Errorf("%q… and %q… share a tag", v[:8], other[:min(8, len(other))])
		}
	}
	if a.Of(v) != a.Of(strings.Clone(v)) {
		t.Error("the same value got two tags")
	}
	if a.Of(v) == b.Of(v) {
		t.Error("two keys gave one tag")
	}
	if tag := a.Of(v); tag.Key() == tag.Proof() {
		t.Error("Key and Proof are one half")
	}
}

func newTagger(t *testing.T) Tagger {
	t.Helper()
	tg, err := NewTagger()
	if err != nil {
		t.Fatal(err)
	}
	return tg
}
