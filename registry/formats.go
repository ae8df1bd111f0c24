package registry

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/rampart-mlaas/rampart"
)

// ErrFormat is wrapped by every rejection of an imported model's bytes.
var ErrFormat = errors.New("unsupported model format")

// ErrInput is wrapped when prediction input does not fit the model.
var ErrInput = errors.New("input does not fit the model")

// MaxImportSize bounds an imported model (64 MiB).
const MaxImportSize = 64 << 20

// Detection is what Sniff recognised in a model file, by content only: the
// file name is never consulted, so a pickle called model.json is a pickle.
type Detection struct {
	// Format is the supported format (rampart.Format…), "" if none.
	Format string
	// Kind names what was recognised when it is not supported ("Python
	// pickle (protocol 4)", "PyTorch checkpoint", …).
	Kind string
	// Reason explains a rejection to the caller.
	Reason string
}

const codeReason = "it can carry executable code that runs when the model is loaded, so Rampart never accepts it (MODEL-2); " +
	"export the model as XGBoost JSON (Booster.save_model(\"model.json\")) or LightGBM text (Booster.save_model(\"model.txt\"))"

// Sniff classifies model bytes by content (MODEL-2). The allow-list is
// XGBoost JSON, LightGBM text and Rampart's own artifact; everything else is
// rejected, and code-carrying formats are named so the caller learns why.
func Sniff(b []byte) Detection {
	switch {
	case len(b) == 0:
		return Detection{Kind: "empty file", Reason: "the model file is empty"}
	case isPickle(b):
		return Detection{Kind: pickleKind(b), Reason: "the file is a Python pickle: " + codeReason}
	case bytes.HasPrefix(b, []byte("PK\x03\x04")) || bytes.HasPrefix(b, []byte("PK\x05\x06")):
		kind := zipKind(b)
		return Detection{Kind: kind, Reason: "the file is a " + kind + ": " + codeReason}
	case bytes.HasPrefix(b, []byte("\x93NUMPY")):
		if npyObject(b) {
			return Detection{Kind: "NumPy array with object dtype", Reason: "the file is a NumPy array of Python objects, which are pickled: " + codeReason}
		}
		return Detection{Kind: "NumPy array", Reason: "the file is a bare NumPy array, not a model; " + codeReason[strings.Index(codeReason, "export"):]}
	case bytes.HasPrefix(b, []byte("\x89HDF\r\n\x1a\n")):
		return Detection{Kind: "HDF5 (Keras) model", Reason: "the file is an HDF5/Keras model, whose Lambda layers carry serialized Python bytecode: " + codeReason}
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}), bytes.HasPrefix(b, []byte("BZh")), bytes.HasPrefix(b, []byte{0xfd, '7', 'z', 'X', 'Z', 0}),
		bytes.HasPrefix(b, []byte{0x5d, 0, 0}), bytes.HasPrefix(b, []byte("ZF0x")), len(b) > 1 && b[0] == 0x78 && (b[1] == 0x01 || b[1] == 0x5e || b[1] == 0x9c || b[1] == 0xda):
		return Detection{Kind: "compressed file (joblib/gzip/bz2/xz/zlib)", Reason: "the file is compressed, as joblib stores pickled models: " + codeReason}
	case bytes.HasPrefix(b, []byte("RMPTML\x00")):
		return Detection{Format: rampart.FormatRampart}
	}
	t := bytes.TrimLeft(b, " \t\r\n\xef\xbb\xbf")
	switch {
	case len(t) > 0 && t[0] == '{':
		// jsonpickle and similar encode Python objects in JSON and rebuild
		// them (running constructors) on load.
		if bytes.Contains(t, []byte(`"py/`)) {
			return Detection{Kind: "jsonpickle document", Reason: "the file is a jsonpickle document (py/object, py/reduce): " + codeReason}
		}
		if bytes.Contains(t, []byte(`"learner"`)) {
			return Detection{Format: rampart.FormatXGBoost}
		}
		return Detection{Kind: "JSON document", Reason: "the JSON document is not an XGBoost model (no \"learner\" object)"}
	case bytes.HasPrefix(t, []byte("tree\n")) || bytes.HasPrefix(t, []byte("tree\r\n")):
		return Detection{Format: rampart.FormatLightGBM}
	case bytes.HasPrefix(b, []byte("binf")) || len(b) >= 4 && b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 0x3f:
		return Detection{Kind: "XGBoost binary model", Reason: "the legacy XGBoost binary format is not accepted; save the model as JSON (Booster.save_model(\"model.json\"))"}
	}
	return Detection{Kind: "unknown", Reason: "the file is not a supported model: " + codeReason[strings.Index(codeReason, "export"):]}
}

// pickle opcodes a protocol 0/1 pickle can start with: MARK, EMPTY_DICT,
// EMPTY_LIST, GLOBAL, INT, LONG, STRING, UNICODE, NONE, TUPLE, DICT, LIST …
const pickleStart = "(}]cILSVNtdlKJMGFXUTBq)"

// isPickle recognises pickles: protocol 2+ start with PROTO (0x80) and a
// version byte; protocol 0/1 pickles start with an opcode and end with STOP
// ('.'), usually after GLOBAL ("c<module>\n<name>\n") or REDUCE ('R').
func isPickle(b []byte) bool {
	if len(b) >= 2 && b[0] == 0x80 && b[1] >= 1 && b[1] <= 5 {
		return true
	}
	t := bytes.TrimRight(b, " \t\r\n")
	if len(t) < 2 || t[len(t)-1] != '.' || !strings.ContainsRune(pickleStart, rune(t[0])) {
		return false
	}
	// A pickle's body is opcodes; text formats we accept never end in '.'
	// after such a start. Look for typical protocol 0/1 structure.
	return bytes.Contains(t, []byte("\n")) || bytes.ContainsAny(t, "Rbs0p") || t[0] == '(' || t[0] == '}' || t[0] == ']'
}

func pickleKind(b []byte) string {
	if b[0] == 0x80 {
		k := fmt.Sprintf("Python pickle (protocol %d)", b[1])
		// Legacy torch.save writes a pickled magic number first.
		if bytes.Contains(b[:min(len(b), 64)], []byte{0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}) {
			k = "legacy PyTorch checkpoint (pickle)"
		}
		return k
	}
	return "Python pickle (protocol 0/1)"
}

// zipKind names a zip container by its entries: PyTorch checkpoints and
// TorchScript hold data.pkl, NumPy .npz holds .npy files, Keras v3 holds
// config.json; any zip holding a pickle is code-carrying.
func zipKind(b []byte) string {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return "zip archive"
	}
	hasPkl, hasNpy, keras := false, false, false
	for i, f := range zr.File {
		if i > 10000 {
			break
		}
		n := f.Name
		switch {
		case strings.HasSuffix(n, "data.pkl") || strings.HasSuffix(n, ".pkl") || strings.HasSuffix(n, ".pickle"):
			hasPkl = true
		case strings.HasSuffix(n, ".npy"):
			hasNpy = true
		case n == "config.json" || n == "metadata.json":
			keras = true
		}
	}
	switch {
	case hasPkl:
		return "PyTorch checkpoint (zip with pickled data.pkl)"
	case hasNpy:
		return "NumPy .npz archive (may hold pickled object arrays)"
	case keras:
		return "Keras v3 archive (may hold Lambda layers)"
	}
	return "zip archive"
}

// npyObject reports whether a .npy header declares an object dtype ('O'),
// whose payload is a pickle.
func npyObject(b []byte) bool {
	if len(b) < 10 {
		return true
	}
	hdr := b[10:min(len(b), 10+4096)]
	i := bytes.Index(hdr, []byte("descr"))
	if i < 0 {
		return true
	}
	rest := hdr[i:]
	if j := bytes.IndexByte(rest, ','); j > 0 {
		rest = rest[:j]
	}
	return bytes.Contains(rest, []byte("O")) || bytes.Contains(rest, []byte("[")) // object or structured dtypes
}
