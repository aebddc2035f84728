package browser

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestKeyCombosResolveLikePlaywright(t *testing.T) {
	tests := []struct {
		combo    string
		wantKeys []string // kb Key values, modifiers first
		wantErr  string
	}{
		{"Enter", []string{"Enter"}, ""},
		{"a", []string{"a"}, ""},
		{"Control+a", []string{"Control", "a"}, ""},
		{"ControlOrMeta+a", []string{"Control", "a"}, ""},
		{"Meta+Shift+t", []string{"Meta", "Shift", "t"}, ""},
		{"Shift++", []string{"Shift", "+"}, ""},
		{"KeyA", []string{"a"}, ""},
		{"Digit0", []string{"0"}, ""},
		{"ArrowDown", []string{"ArrowDown"}, ""},
		{"F5", []string{"F5"}, ""},
		{"Space", []string{" "}, ""},
		{"é", []string{"é"}, ""},
		{"Control+Nope", nil, `Unknown key: "Nope"`},
		{"Enterr", nil, `Unknown key: "Enterr"`},
	}
	for _, tc := range tests {
		t.Run(tc.combo, func(t *testing.T) {
			var got []string
			var err error
			for _, p := range splitCombo(tc.combo) {
				k, kerr := lookupKey(p)
				if kerr != nil {
					err = kerr
					break
				}
				got = append(got, k.Key)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || strings.Join(got, "|") != strings.Join(tc.wantKeys, "|") {
				t.Fatalf("keys %q err %v, want %q", got, err, tc.wantKeys)
			}
		})
	}
}

func TestModifierMaskRejectsUnknownNames(t *testing.T) {
	if m, err := modifierMask([]string{"Alt", "Control", "Meta", "Shift"}); err != nil || m != 15 {
		t.Fatalf("mask %d err %v, want 15", m, err)
	}
	var af *actionFailure
	if _, err := modifierMask([]string{"Hyper"}); !errors.As(err, &af) || !strings.Contains(err.Error(), `"Hyper"`) {
		t.Fatalf("unknown modifier: %v", err)
	}
}

// FuzzKeyCombo: any key_comb string splits into non-empty parts that
// rebuild it, and resolving them never panics and gives a key or an
// action error naming the part.
func FuzzKeyCombo(f *testing.F) {
	for _, s := range []string{"Enter", "Control+a", "Shift++", "+", "++", "a+", "Meta+Shift+t", "", "\xff+\x00", "KeyZ+Digit9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parts := splitCombo(s)
		// Only separators are dropped (and a lone "+" at the end).
		if j := strings.Join(parts, "+"); j != s && j+"+" != s {
			t.Fatalf("split %q into %q", s, parts)
		}
		for _, p := range parts {
			if p == "" {
				t.Fatalf("empty part in %q: %q", s, parts)
			}
			k, err := lookupKey(p)
			if err == nil && k == nil {
				t.Fatalf("nil key and nil error for %q", p)
			}
			if err != nil && !strings.Contains(err.Error(), strconv.Quote(p)) {
				t.Fatalf("error %q does not name %q", err, p)
			}
		}
	})
}
