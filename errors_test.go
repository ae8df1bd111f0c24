package rampart_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/rampart-mlaas/rampart"
)

func TestErrorText(t *testing.T) {
	cause := errors.New("row 14 (line 15), column 2: bare quote")
	for _, c := range []struct {
		err  *rampart.Error
		want string
	}{
		{&rampart.Error{Code: rampart.CodeInvalid, Message: "bad csv"}, "invalid: bad csv"},
		{&rampart.Error{Code: rampart.CodeInvalid, Message: "bad csv", Err: cause}, "invalid: bad csv: row 14 (line 15), column 2: bare quote"},
		{&rampart.Error{Code: rampart.CodeInvalid, Message: cause.Error(), Err: cause}, "invalid: row 14 (line 15), column 2: bare quote"},
		{&rampart.Error{Code: rampart.CodeInvalid, Message: "upload refused: " + cause.Error(), Err: cause}, "invalid: upload refused: row 14 (line 15), column 2: bare quote"},
		{&rampart.Error{Code: rampart.CodeUnavailable, Err: cause}, "unavailable: row 14 (line 15), column 2: bare quote"},
	} {
		if got := c.err.Error(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
	// Matching by code still works through wrapping.
	if err := fmt.Errorf("ingest: %w", &rampart.Error{Code: rampart.CodeInvalid, Err: cause}); !errors.Is(err, rampart.ErrInvalid) {
		t.Error("errors.Is by code failed")
	}
}
