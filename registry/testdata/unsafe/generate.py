# Builds the unsafe-format corpus. Run once with Debian's python3
# (/usr/bin/python3 generate.py). Nothing here is ever unpickled: every
# payload would run `echo pwned` through os.system if Python loaded it.
import bz2, gzip, io, lzma, os, pickle, zipfile, zlib
import joblib
import numpy as np


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def w(name, data):
    with open(name, "wb") as f:
        f.write(data)


for proto in range(0, 6):
    w(f"pickle_p{proto}.pkl", pickle.dumps(Evil(), protocol=proto))
# Disguised by name, and one that even mentions "learner" like XGBoost JSON.
w("pickle_p4_disguised.json", pickle.dumps({"learner": Evil()}, protocol=4))
w("pickle_p0_disguised.txt", pickle.dumps(Evil(), protocol=0))
w("pickle_p2_model.ubj", pickle.dumps(Evil(), protocol=2))

# joblib: plain and compressed with each codec joblib supports.
for comp in [None, "zlib", "gzip", "bz2", "lzma", "xz"]:
    buf = io.BytesIO()
    joblib.dump({"model": Evil(), "w": np.arange(4.0)}, buf, compress=(comp, 3) if comp else 0)
    w(f"joblib_{comp or 'plain'}.joblib", buf.getvalue())
buf = io.BytesIO()
joblib.dump(Evil(), buf, compress=("zlib", 3))
w("joblib_zlib_disguised.json", buf.getvalue())

# PyTorch: torch.save writes a zip whose archive/data.pkl is a pickle.
def torch_zip(name, extra=()):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle.dumps(Evil(), protocol=2))
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/data/0", b"\0" * 16)
        z.writestr("archive/version", "3\n")
        for n, d in extra:
            z.writestr(n, d)
    w(name, buf.getvalue())

torch_zip("torch_checkpoint.pt")
torch_zip("torch_disguised.json")
torch_zip("torchscript.pt", [("archive/code/__torch__.py", "def forward(self, x):\n    return x\n")])
# Legacy (pre-1.6) torch.save: a pickled magic number, then pickles.
legacy = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(Evil(), protocol=2)
w("torch_legacy.pt", legacy)

# NumPy: an object array is pickled inside the .npy; .npz is a zip of them.
b = io.BytesIO()
np.save(b, np.array([Evil(), 1], dtype=object), allow_pickle=True)
w("numpy_object.npy", b.getvalue())
w("numpy_object_disguised.txt", b.getvalue())
b = io.BytesIO()
np.savez(b, a=np.array([Evil()], dtype=object))
w("numpy_archive.npz", b.getvalue())

# Keras HDF5 signature (Lambda layers carry marshalled bytecode).
w("keras_model.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 56)

# jsonpickle: JSON that rebuilds objects (and calls functions) on load.
w("jsonpickle_model.json", b'{"py/reduce": [{"py/function": "posix.system"}, {"py/tuple": ["echo pwned"]}], "learner": {}}')

# Python source and a shell script posing as models.
w("python_source.txt", b"import os\nos.system('echo pwned')\n")
w("shell.json", b"#!/bin/sh\necho pwned\n")
