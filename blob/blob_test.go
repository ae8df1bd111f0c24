package blob

import (
	"errors"
	"strings"
	"testing"

	"github.com/rampart-mlaas/rampart"
)

func TestValidateKey(t *testing.T) {
	good := []string{"a", "a/b", "t/tn_abc/dataset/ds_x/3", "A-Z_0.9", "a/b.c"}
	bad := []string{"", "/a", "a/", "a//b", "..", "a/../b", ".", "./a", "a/.b", `a\b`, "a b", "a\x00b",
		"é", strings.Repeat("a", MaxKeyLen+1), "a/./b", "C:/x"}
	for _, k := range good {
		if err := ValidateKey(k); err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", k, err)
		}
	}
	for _, k := range bad {
		if err := ValidateKey(k); !errors.Is(err, rampart.ErrInvalid) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalid", k, err)
		}
	}
}

func TestValidatePrefix(t *testing.T) {
	for _, p := range []string{"", "a", "a/", "a/b", "t/x/"} {
		if err := ValidatePrefix(p); err != nil {
			t.Errorf("ValidatePrefix(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"/", "/a", "../", "a//", "a/../"} {
		if err := ValidatePrefix(p); err == nil {
			t.Errorf("ValidatePrefix(%q) = nil, want error", p)
		}
	}
}

// FuzzValidateKey checks that any accepted key is confined: relative, no
// dot segments, no separators other than "/".
func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "/etc/passwd", "a/./b", "t/tn_1/ds/x/1", `..\..`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if ValidateKey(key) != nil {
			return
		}
		if strings.HasPrefix(key, "/") || strings.Contains(key, "\\") || strings.Contains(key, "//") {
			t.Fatalf("accepted unsafe key %q", key)
		}
		for seg := range strings.SplitSeq(key, "/") {
			if seg == "." || seg == ".." || seg == "" || strings.HasPrefix(seg, ".") {
				t.Fatalf("accepted key with bad segment %q", key)
			}
		}
	})
}
