package auditlog

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/rampart-mlaas/rampart/auditlog/tsa"
	"golang.org/x/mod/sumdb/note"
)

// A tenant export (AUDIT-4) is JSON lines, each line the canonical
// (encoding/json, fixed field order) encoding of one of:
//
//	{"type":"checkpoint","note":"<signed checkpoint>","timestamp":"<base64 DER token or empty>"}
//	{"type":"event","index":N,"event":{<canonical event>},"proof":["<base64 hash>",…]}   (zero or more)
//	{"type":"end","count":N,"note":"<signed export note>"}
//
// Every event's proof is an inclusion proof in the checkpoint's tree. The
// export note is signed by the log key and reads
//
//	rampart-audit-export/v1\n<origin>\n<checkpoint size>\n<event count>\n<base64 SHA-256 of all preceding lines>\n
//
// so a verifier holding only the public key detects a change to any byte:
// lines must be canonical, events canonical and proven, and the digest signed.
const exportNoteHeader = "rampart-audit-export/v1"

// MaxExportLine bounds one line of an export.
const MaxExportLine = 256 << 10

type exportHead struct {
	Type      string `json:"type"`
	Note      string `json:"note"`
	Timestamp string `json:"timestamp"`
}

type exportEvent struct {
	Type  string          `json:"type"`
	Index uint64          `json:"index"`
	Event json.RawMessage `json:"event"`
	Proof []string        `json:"proof"`
}

type exportEnd struct {
	Type  string `json:"type"`
	Count uint64 `json:"count"`
	Note  string `json:"note"`
}

// Export writes the events of one tenant ("" for all) covered by a freshly
// published checkpoint, with inclusion proofs, as a signed export. It returns
// the number of events written.
func (l *Log) Export(ctx context.Context, w io.Writer, tenant string) (uint64, error) {
	cp, err := l.Publish(ctx)
	if err != nil {
		return 0, err
	}
	if latest, err := l.CheckpointAt(ctx, cp.Size); err == nil {
		cp = latest // it may carry a time-stamp by now
	}
	h := sha256.New()
	bw := bufio.NewWriter(io.MultiWriter(w, h))
	line := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("audit: export: %w", err)
		}
		bw.Write(b)
		return bw.WriteByte('\n')
	}
	if err := line(exportHead{Type: "checkpoint", Note: string(cp.Note), Timestamp: base64.StdEncoding.EncodeToString(cp.Timestamp)}); err != nil {
		return 0, err
	}
	var count uint64
	after := int64(-1)
	for {
		leaves, err := l.st.QueryLeaves(ctx, LeafQuery{After: after, Limit: 1000, Tenant: tenant})
		if err != nil {
			return count, fmt.Errorf("audit: export: %w", err)
		}
		done := len(leaves) < 1000
		for _, lf := range leaves {
			if lf.Index >= cp.Size {
				done = true
				break
			}
			prf, err := inclusionProof(ctx, l.st, lf.Index, cp.Size)
			if err != nil {
				return count, err
			}
			ps := make([]string, len(prf))
			for i, p := range prf {
				ps[i] = base64.StdEncoding.EncodeToString(p)
			}
			if err := line(exportEvent{Type: "event", Index: lf.Index, Event: lf.Data, Proof: ps}); err != nil {
				return count, err
			}
			count++
			after = int64(lf.Index)
		}
		if done {
			break
		}
	}
	if err := bw.Flush(); err != nil {
		return count, fmt.Errorf("audit: export: %w", err)
	}
	text := fmt.Sprintf("%s\n%s\n%d\n%d\n%s\n", exportNoteHeader, cp.Origin, cp.Size, count,
		base64.StdEncoding.EncodeToString(h.Sum(nil)))
	signed, err := note.Sign(&note.Note{Text: text}, l.signer)
	if err != nil {
		return count, fmt.Errorf("audit: sign export: %w", err)
	}
	if err := line(exportEnd{Type: "end", Count: count, Note: string(signed)}); err != nil {
		return count, err
	}
	if err := bw.Flush(); err != nil {
		return count, fmt.Errorf("audit: export: %w", err)
	}
	return count, nil
}

// ExportOptions tunes VerifyExport.
type ExportOptions struct {
	// TSARoots: when set, the checkpoint's token must chain to one of them.
	TSARoots *x509.CertPool
	// RequireTimestamp fails an export whose checkpoint has no token.
	RequireTimestamp bool
}

// ExportReport is what a verified export proves.
type ExportReport struct {
	Checkpoint Checkpoint
	Timestamp  *tsa.Info
	Events     []Event
}

// VerifyExport verifies a tenant export offline with only the log's public
// key (AUDIT-4): the checkpoint signature and time-stamp, every event's
// canonical form and inclusion proof, and the signed digest over the whole
// file. Any changed, added, removed or reordered byte fails.
func VerifyExport(r io.Reader, key string, opts ExportOptions) (ExportReport, error) {
	var rep ExportReport
	v, err := NewVerifier(key)
	if err != nil {
		return rep, err
	}
	br := bufio.NewReaderSize(r, 64<<10)
	h := sha256.New()
	lineNo := 0
	readLine := func() ([]byte, error) {
		var buf []byte
		for {
			part, err := br.ReadSlice('\n')
			buf = append(buf, part...)
			if len(buf) > MaxExportLine {
				return nil, fmt.Errorf("%w: export line %d longer than %d bytes", errFormat, lineNo+1, MaxExportLine)
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err == io.EOF && len(buf) > 0 {
				return nil, fmt.Errorf("%w: export line %d does not end with a newline", errFormat, lineNo+1)
			}
			if err != nil {
				return nil, err
			}
			lineNo++
			return buf, nil
		}
	}
	// canonical decodes line (with its newline) into v and insists that it is
	// exactly the encoding of what it decoded to.
	canonical := func(line []byte, v any) error {
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return fmt.Errorf("%w: export line %d: %v", errFormat, lineNo, err)
		}
		again, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("%w: export line %d: %v", errFormat, lineNo, err)
		}
		if !bytes.Equal(append(again, '\n'), line) {
			return fmt.Errorf("%w: export line %d is not canonical", errFormat, lineNo)
		}
		return nil
	}
	first, err := readLine()
	if err != nil {
		return rep, fmt.Errorf("export: %w", eofIsFormat(err))
	}
	var head exportHead
	if err := canonical(first, &head); err != nil {
		return rep, err
	}
	if head.Type != "checkpoint" {
		return rep, fmt.Errorf("%w: export must start with the checkpoint", errFormat)
	}
	cp, err := ParseCheckpoint([]byte(head.Note), v)
	if err != nil {
		return rep, fmt.Errorf("export checkpoint: %w", err)
	}
	if cp.Timestamp, err = base64.StdEncoding.Strict().DecodeString(head.Timestamp); err != nil {
		return rep, fmt.Errorf("%w: export time-stamp: %v", errFormat, err)
	}
	if len(cp.Timestamp) == 0 {
		cp.Timestamp = nil
	}
	if rep.Timestamp, err = verifyTimestamp(cp, opts.TSARoots, opts.RequireTimestamp); err != nil {
		return rep, err
	}
	rep.Checkpoint = cp
	h.Write(first)
	next := uint64(0)
	for {
		line, err := readLine()
		if err != nil {
			return rep, fmt.Errorf("export: %w", eofIsFormat(err))
		}
		var typ struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(line, &typ); err != nil {
			return rep, fmt.Errorf("%w: export line %d: %v", errFormat, lineNo, err)
		}
		switch typ.Type {
		case "event":
			var e exportEvent
			if err := canonical(line, &e); err != nil {
				return rep, err
			}
			if e.Index < next {
				return rep, verifyErr("export line %d: event %d out of order", lineNo, e.Index)
			}
			pe := ProvenEvent{Index: e.Index, Event: e.Event, Proof: make([][]byte, len(e.Proof))}
			for i, p := range e.Proof {
				if pe.Proof[i], err = base64.StdEncoding.Strict().DecodeString(p); err != nil {
					return rep, fmt.Errorf("%w: export line %d: proof: %v", errFormat, lineNo, err)
				}
			}
			if err := verifyProvenEvent(cp, pe); err != nil {
				return rep, fmt.Errorf("export line %d: %w", lineNo, err)
			}
			ev, _ := ParseEvent(e.Event) // verified above
			rep.Events = append(rep.Events, ev)
			next = e.Index + 1
			h.Write(line)
		case "end":
			var end exportEnd
			if err := canonical(line, &end); err != nil {
				return rep, err
			}
			if err := verifyExportNote(end, v, cp, uint64(len(rep.Events)), h.Sum(nil)); err != nil {
				return rep, err
			}
			if _, err := br.ReadByte(); err != io.EOF {
				return rep, fmt.Errorf("%w: data after the end of the export", errFormat)
			}
			return rep, nil
		default:
			return rep, fmt.Errorf("%w: export line %d: unexpected type %q", errFormat, lineNo, typ.Type)
		}
	}
}

func eofIsFormat(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: export is truncated", errFormat)
	}
	return err
}

func verifyExportNote(end exportEnd, v note.Verifier, cp Checkpoint, count uint64, sum []byte) error {
	if len(end.Note) > MaxNoteSize {
		return fmt.Errorf("%w: export note too large", errFormat)
	}
	n, err := note.Open([]byte(end.Note), note.VerifierList(v))
	if err != nil {
		return verifyErr("export signature: %v", err)
	}
	want := fmt.Sprintf("%s\n%s\n%d\n%d\n%s\n", exportNoteHeader, cp.Origin, cp.Size, count, base64.StdEncoding.EncodeToString(sum))
	if n.Text != want {
		lines := strings.Split(n.Text, "\n")
		if len(lines) == 6 && lines[3] != strconv.FormatUint(count, 10) {
			return verifyErr("export holds %d events, its signature says %s", count, lines[3])
		}
		return verifyErr("export content does not match its signed digest")
	}
	if end.Count != count {
		return verifyErr("export end line says %d events, found %d", end.Count, count)
	}
	return nil
}
