package auditlog

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/rampart-mlaas/rampart"
	"golang.org/x/mod/sumdb/note"
)

// errFormat marks input that does not parse; it matches rampart.ErrInvalid.
var errFormat = &rampart.Error{Code: rampart.CodeInvalid, Message: "malformed audit data"}

// ErrVerify is matched (errors.Is) by every verification failure: a bad
// signature, a proof that does not verify, an event that is not where it
// claims to be, an inconsistent checkpoint (AUDIT-1).
var ErrVerify = errors.New("audit log verification failed")

func verifyErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrVerify, fmt.Sprintf(format, args...))
}

// MaxNoteSize bounds a signed note before it is parsed.
const MaxNoteSize = 8 << 10

// Checkpoint is a signed statement of the log's size and root hash in the
// C2SP tlog-checkpoint format (AUDIT-1):
//
//	<origin>\n<size in decimal>\n<base64 root hash>\n
//
// followed by a blank line and an Ed25519 signed-note signature line.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
	// Note is the complete signed note (body, blank line, signatures).
	Note []byte
	// Timestamp is the DER RFC 3161 TimeStampToken over SHA-256(Body), or
	// nil when no TSA is configured or the TSA has not answered yet (AUDIT-2).
	Timestamp []byte
}

// Body returns the signed checkpoint body, the text time-stamped by the TSA.
func (c Checkpoint) Body() []byte { return []byte(checkpointBody(c.Origin, c.Size, c.Root)) }

// Digest is SHA-256(Body): the message imprint of the RFC 3161 token.
func (c Checkpoint) Digest() [32]byte { return sha256.Sum256(c.Body()) }

func checkpointBody(origin string, size uint64, root []byte) string {
	return origin + "\n" + strconv.FormatUint(size, 10) + "\n" + base64.StdEncoding.EncodeToString(root) + "\n"
}

// validOrigin: the origin is the note key name too, so it must be a valid
// note name (no spaces, no '+') and printable.
func validOrigin(o string) error {
	if o == "" || len(o) > 256 {
		return rampart.Invalid("origin", "audit log origin must be 1..256 bytes")
	}
	for _, r := range o {
		if r == '+' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return rampart.Invalid("origin", "audit log origin %q must be printable, without spaces or '+'", o)
		}
	}
	return nil
}

// edSigner is a note.Signer over an Ed25519 private key held by the caller
// (the keyring); the key hash comes from x/mod's own verifier encoding.
type edSigner struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func (s *edSigner) Name() string                    { return s.name }
func (s *edSigner) KeyHash() uint32                 { return s.hash }
func (s *edSigner) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// NewNoteSigner returns the signed-note signer for origin and its public
// verifier key ("<origin>+<hash>+<base64 key>", printed by `rampart audit key`).
func NewNoteSigner(origin string, key ed25519.PrivateKey) (note.Signer, string, error) {
	if err := validOrigin(origin); err != nil {
		return nil, "", err
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, "", rampart.Invalid("signing_key", "audit signing key must be an Ed25519 private key")
	}
	vkey, err := note.NewEd25519VerifierKey(origin, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, "", fmt.Errorf("audit: verifier key: %w", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, "", fmt.Errorf("audit: verifier key: %w", err)
	}
	return &edSigner{name: origin, hash: v.KeyHash(), key: key}, vkey, nil
}

// NewVerifier parses a verifier key as printed by `rampart audit key`.
func NewVerifier(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, rampart.Invalid("key", "malformed audit log key: %v", err)
	}
	return v, nil
}

// SignCheckpoint returns the signed checkpoint note for (size, root), the
// origin being the signer's name.
func SignCheckpoint(s note.Signer, size uint64, root []byte) ([]byte, error) {
	return signCheckpoint(s, size, root)
}

// signCheckpoint returns the signed note for (origin, size, root).
func signCheckpoint(s note.Signer, size uint64, root []byte) ([]byte, error) {
	b, err := note.Sign(&note.Note{Text: checkpointBody(s.Name(), size, root)}, s)
	if err != nil {
		return nil, fmt.Errorf("audit: sign checkpoint: %w", err)
	}
	return b, nil
}

// ParseCheckpoint verifies the signature of a signed checkpoint with v and
// parses its body. The origin must equal the key name; extension lines are
// rejected (this log writes none), and so is anything that is not the exact
// canonical form (a size with leading zeros, a non-canonical base64 root).
func ParseCheckpoint(signed []byte, v note.Verifier) (Checkpoint, error) {
	if len(signed) > MaxNoteSize {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint larger than %d bytes", errFormat, MaxNoteSize)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		var unv *note.UnverifiedNoteError
		if errors.As(err, &unv) {
			return Checkpoint{}, verifyErr("checkpoint is not signed by %s", v.Name())
		}
		var inv *note.InvalidSignatureError
		if errors.As(err, &inv) {
			return Checkpoint{}, verifyErr("checkpoint signature is invalid")
		}
		return Checkpoint{}, fmt.Errorf("%w: checkpoint: %v", errFormat, err)
	}
	if err := canonicalSignatures(signed[len(n.Text)+1:]); err != nil {
		return Checkpoint{}, err
	}
	c, err := parseCheckpointBody(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != v.Name() {
		return Checkpoint{}, verifyErr("checkpoint origin %q is not the key's name %q", c.Origin, v.Name())
	}
	c.Note = bytes.Clone(signed)
	return c, nil
}

func parseCheckpointBody(text string) (Checkpoint, error) {
	lines := strings.Split(text, "\n")
	// origin, size, root, then the empty string after the final newline.
	if len(lines) != 4 || lines[3] != "" {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint must have exactly 3 lines", errFormat)
	}
	origin, sizeS, rootS := lines[0], lines[1], lines[2]
	if err := validOrigin(origin); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint origin: %v", errFormat, err)
	}
	size, err := strconv.ParseUint(sizeS, 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != sizeS {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint size %q", errFormat, sizeS)
	}
	root, err := base64.StdEncoding.Strict().DecodeString(rootS)
	if err != nil || len(root) != HashSize || base64.StdEncoding.EncodeToString(root) != rootS {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint root hash %q", errFormat, rootS)
	}
	return Checkpoint{Origin: origin, Size: size, Root: root}, nil
}

// canonicalSignatures insists that every signature line ("— name base64\n")
// uses canonical base64: note.Open accepts non-canonical padding bits, which
// would let the bytes of a checkpoint change without its signature changing.
func canonicalSignatures(block []byte) error {
	for _, line := range strings.SplitAfter(string(block), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(strings.TrimSuffix(line, "\n"))
		if len(f) != 3 {
			return fmt.Errorf("%w: malformed signature line", errFormat)
		}
		b, err := base64.StdEncoding.Strict().DecodeString(f[2])
		if err != nil || base64.StdEncoding.EncodeToString(b) != f[2] {
			return fmt.Errorf("%w: signature is not canonical base64", errFormat)
		}
	}
	return nil
}
