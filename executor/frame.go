package executor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame types. Parent → child: spec, data, end. Child → parent: progress,
// result, artifact, error.
const (
	frameSpec     byte = 'S'
	frameData     byte = 'D'
	frameEnd      byte = 'E'
	frameProgress byte = 'P'
	frameResult   byte = 'R'
	frameArtifact byte = 'A'
	frameError    byte = 'X'
)

// MaxArtifactBytes bounds the artifact a child may return; every other
// frame is bounded by maxSmallFrame.
const (
	MaxArtifactBytes = 256 << 20
	maxSmallFrame    = 4 << 20
	dataChunk        = 1 << 20
)

var errFrame = errors.New("malformed frame")

// writeFrame writes one length-prefixed frame: type (1 byte), length
// (4 bytes, big-endian), payload.
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > MaxArtifactBytes {
		return fmt.Errorf("%w: %d bytes", errFrame, len(payload))
	}
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// readFrame reads one frame, refusing lengths above the bound for its type
// before allocating, so a hostile peer cannot make the reader allocate
// more than the bound.
func readFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	limit := uint32(maxSmallFrame)
	if hdr[0] == frameArtifact {
		limit = MaxArtifactBytes
	}
	if n > limit {
		return 0, nil, fmt.Errorf("%w: type %q length %d exceeds %d", errFrame, hdr[0], n, limit)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, fmt.Errorf("%w: %w", errFrame, err)
	}
	return hdr[0], buf, nil
}
