package executor

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func dataFrames(chunks ...[]byte) []byte {
	var b bytes.Buffer
	for _, c := range chunks {
		_ = writeFrame(&b, frameData, c)
	}
	_ = writeFrame(&b, frameEnd, nil)
	return b.Bytes()
}

func TestDataReader(t *testing.T) {
	stream := dataFrames([]byte("a,b\n1,"), nil, []byte("2\n3,4\n"))
	got, err := io.ReadAll(&dataReader{in: bytes.NewReader(append(stream, "trailing"...))})
	if err != nil || string(got) != "a,b\n1,2\n3,4\n" {
		t.Fatalf("got %q, %v", got, err)
	}
	for name, bad := range map[string][]byte{
		"no end":       stream[:len(stream)-5],
		"cut payload":  stream[:8],
		"cut header":   stream[:3],
		"foreign type": append(dataFrames([]byte("x"))[:6], frameArtifact, 0, 0, 0, 0),
		"end with len": {frameEnd, 0, 0, 0, 1, 'x'},
		"too long":     {frameData, 0xff, 0xff, 0xff, 0xff},
	} {
		d := &dataReader{in: bytes.NewReader(bad)}
		if _, err := io.ReadAll(d); !errors.Is(err, errFrame) || !errors.Is(d.err, errFrame) {
			t.Errorf("%s: got %v (sticky %v), want a frame error", name, err, d.err)
		}
	}
}

// FuzzDataReader: any byte stream yields at most its data payloads, in
// order, and either a clean end or a sticky frame error; never a panic.
func FuzzDataReader(f *testing.F) {
	f.Add(dataFrames([]byte("a,b\n1,2\n")))
	f.Add(dataFrames(nil, []byte("x"), nil))
	f.Add([]byte{frameData, 0, 0, 0, 3, 'a'})
	f.Add([]byte{frameEnd, 0, 0, 0, 0})
	f.Add([]byte{frameSpec, 0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, in []byte) {
		d := &dataReader{in: bytes.NewReader(in)}
		buf := make([]byte, 7)
		var got []byte
		for {
			n, err := d.Read(buf)
			if n < 0 || n > len(buf) {
				t.Fatalf("read %d into %d", n, len(buf))
			}
			got = append(got, buf[:n]...)
			if err != nil {
				if err != io.EOF && !errors.Is(err, errFrame) {
					t.Fatalf("unexpected error %v", err)
				}
				if errors.Is(err, errFrame) && errors.Is(err, io.EOF) {
					t.Fatalf("a frame error %v passes for the end of the data", err)
				}
				if (err == io.EOF) != d.end {
					t.Fatalf("EOF %v without the end frame (end %v)", err, d.end)
				}
				break
			}
		}
		if len(got) > len(in) {
			t.Fatalf("%d bytes out of %d in", len(got), len(in))
		}
		if d.end {
			// A clean end: the payloads were exactly what a writer of
			// those frames wrote.
			var want []byte
			r := bytes.NewReader(in)
			for {
				typ, b, err := readFrame(r)
				if err != nil || typ == frameEnd {
					break
				}
				want = append(want, b...)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
	})
}
