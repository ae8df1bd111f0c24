package auditlog_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/rampart-mlaas/rampart/auditlog"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// mutation changes the stored log the way a malicious operator with write
// access to the database could, short of holding the signing key.
type mutation struct {
	name  string
	apply func(t *testing.T, db *sql.DB, r *rand.Rand, n int64)
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func flipBlob(t *testing.T, db *sql.DB, r *rand.Rand, table, col, key string, id int64) {
	t.Helper()
	var b []byte
	if err := db.QueryRow(fmt.Sprintf(`SELECT %s FROM %s WHERE %s=?`, col, table, key), id).Scan(&b); err != nil {
		t.Fatal(err)
	}
	b[r.IntN(len(b))] ^= byte(1 + r.IntN(255))
	mustExec(t, db, fmt.Sprintf(`UPDATE %s SET %s=? WHERE %s=?`, table, col, key), b, id)
}

// rehashFrom recomputes every stored hash from leaf i on, as an attacker who
// rewrote event i would, so that only the signed checkpoints can tell.
func rehashFrom(t *testing.T, db *sql.DB, i, n int64) {
	t.Helper()
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	rng := rf.NewEmptyRange(0)
	rows, err := db.Query(`SELECT idx, data FROM audit_leaves ORDER BY idx`)
	if err != nil {
		t.Fatal(err)
	}
	type upd struct {
		idx    int64
		hashes []byte
	}
	var ups []upd
	for rows.Next() {
		var idx int64
		var data []byte
		if err := rows.Scan(&idx, &data); err != nil {
			t.Fatal(err)
		}
		var hs []byte
		rng.Append(rfc6962.DefaultHasher.HashLeaf(data), func(_ compact.NodeID, h []byte) { hs = append(hs, h...) })
		if idx >= i {
			ups = append(ups, upd{idx, hs})
		}
	}
	rows.Close()
	for _, u := range ups {
		mustExec(t, db, `UPDATE audit_leaves SET hashes=? WHERE idx=?`, u.hashes, u.idx)
	}
}

func forgedEvent(t *testing.T, idx uint64) []byte {
	ev := testEvent(int(idx))
	ev.Index, ev.Action, ev.Principal = idx, "model.delete", "pr_mallory"
	ev.Time = ev.Time.Add(1)
	b, err := ev.MarshalCanonical()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var mutations = []mutation{
	{"modify an event byte", func(t *testing.T, db *sql.DB, r *rand.Rand, n int64) {
		flipBlob(t, db, r, "audit_leaves", "data", "idx", r.Int64N(n))
	}},
	{"modify a stored hash byte", func(t *testing.T, db *sql.DB, r *rand.Rand, n int64) {
		flipBlob(t, db, r, "audit_leaves", "hashes", "idx", r.Int64N(n))
	}},
	{"delete an event", func(t *testing.T, db *sql.DB, r *rand.Rand, n int64) {
		mustExec(t, db, `DELETE FROM audit_leaves WHERE idx=?`, r.Int64N(n))
	}},
	{"reorder two events", func(t *testing.T, db *sql.DB, r *rand.Rand, n int64) {
		a := r.Int64N(n)
		b := (a + 1 + r.Int64N(n-1)) % n
		mustExec(t, db, `UPDATE audit_leaves SET idx=-1 WHERE idx=?`, a)
		mustExec(t, db, `UPDATE audit_leaves SET idx=? WHERE idx=?`, a, b)
		mustExec(t, db, `UPDATE audit_leaves SET idx=? WHERE idx=-1`, b)
	}},
	{"reorder two events' contents with their hashes", func(t *testing.T, db *sql.DB, r *rand.Rand, n int64) {
		a := r.Int64N(n)
		b := (a + 1 + r.Int64N(n-1)) % n
		mustExec(t, db, `UPDATE audit_leaves SET data=(SELECT data FROM audit_leaves WHERE idx=?), hashes=(SELECT hashes FROM audit_leaves WHERE idx=?)
			WHERE idx=?`, b, b, a)
	}},
	{"truncate events", func(t *testing.T, db *sql.DB, r *rand.Rand, n int64) {
		mustExec(t, db, `DELETE FROM audit_leaves WHERE idx>=?`, r.Int64N(n))
	}},
	{"truncate events and checkpoints", func(t *testing.T, db *sql.DB, r *rand.Rand, n int64) {
		k := r.Int64N(n)
		mustExec(t, db, `DELETE FROM audit_leaves WHERE idx>=?`, k)
		mustExec(t, db, `DELETE FROM audit_checkpoints WHERE size>?`, k)
	}},
	{"append a forged event", func(t *testing.T, db *sql.DB, r *rand.Rand, n int64) {
		mustExec(t, db, `INSERT INTO audit_leaves(idx, data, hashes, time_ns, tenant, principal, action, resource)
			VALUES(?,?,x'',0,'','','','')`, n, forgedEvent(t, uint64(n)))
		rehashFrom(t, db, n, n+1)
	}},
	{"replace an event and recompute the tree", func(t *testing.T, db *sql.DB, r *rand.Rand, n int64) {
		i := r.Int64N(n)
		mustExec(t, db, `UPDATE audit_leaves SET data=? WHERE idx=?`, forgedEvent(t, uint64(i)), i)
		rehashFrom(t, db, i, n)
	}},
	{"delete the latest checkpoint", func(t *testing.T, db *sql.DB, r *rand.Rand, n int64) {
		mustExec(t, db, `DELETE FROM audit_checkpoints WHERE size=(SELECT MAX(size) FROM audit_checkpoints)`)
	}},
	{"swap two checkpoint signatures", func(t *testing.T, db *sql.DB, r *rand.Rand, n int64) {
		var sizes []int64
		rows, _ := db.Query(`SELECT size FROM audit_checkpoints`)
		for rows.Next() {
			var s int64
			rows.Scan(&s)
			sizes = append(sizes, s)
		}
		rows.Close()
		a := sizes[r.IntN(len(sizes))]
		b := sizes[(r.IntN(len(sizes)-1)+1+indexOf(sizes, a))%len(sizes)]
		sigA, sigB := sigLine(t, db, a), sigLine(t, db, b)
		setSig(t, db, a, sigB)
		setSig(t, db, b, sigA)
	}},
	{"alter a checkpoint signature", func(t *testing.T, db *sql.DB, r *rand.Rand, n int64) {
		s := randomCheckpoint(t, db, r)
		sig := []byte(sigLine(t, db, s))
		// Change one base64 character of the signature (past the key hash).
		p := len(sig) - 1 - r.IntN(40)
		sig[p] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[(indexByte(sig[p])+1+r.IntN(63))%64]
		setSig(t, db, s, string(sig))
	}},
	{"alter a checkpoint body", func(t *testing.T, db *sql.DB, r *rand.Rand, n int64) {
		s := randomCheckpoint(t, db, r)
		var note []byte
		db.QueryRow(`SELECT note FROM audit_checkpoints WHERE size=?`, s).Scan(&note)
		body := len(note) - len(sigLine(t, db, s)) - 2
		note[r.IntN(body)] ^= byte(1 + r.IntN(255))
		mustExec(t, db, `UPDATE audit_checkpoints SET note=? WHERE size=?`, note, s)
	}},
	{"alter a checkpoint's root column", func(t *testing.T, db *sql.DB, r *rand.Rand, n int64) {
		flipBlob(t, db, r, "audit_checkpoints", "root", "size", randomCheckpoint(t, db, r))
	}},
	{"replace the latest checkpoint with one signed by another key", func(t *testing.T, db *sql.DB, r *rand.Rand, n int64) {
		mustExec(t, db, `UPDATE audit_checkpoints SET note=? WHERE size=(SELECT MAX(size) FROM audit_checkpoints)`, forgedNote)
	}},
}

var forgedNote []byte

func indexOf(xs []int64, x int64) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

func indexByte(c byte) int {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range alphabet {
		if alphabet[i] == c {
			return i
		}
	}
	return 0
}

func randomCheckpoint(t *testing.T, db *sql.DB, r *rand.Rand) int64 {
	var s int64
	if err := db.QueryRow(`SELECT size FROM audit_checkpoints ORDER BY size LIMIT 1 OFFSET ?`, r.IntN(6)).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// sigLine returns the signature line of a stored note (without "\n").
func sigLine(t *testing.T, db *sql.DB, size int64) string {
	var note []byte
	if err := db.QueryRow(`SELECT note FROM audit_checkpoints WHERE size=?`, size).Scan(&note); err != nil {
		t.Fatal(err)
	}
	s := string(note[:len(note)-1])
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			return s[i+1:]
		}
	}
	t.Fatal("no signature line")
	return ""
}

func setSig(t *testing.T, db *sql.DB, size int64, sig string) {
	var note []byte
	db.QueryRow(`SELECT note FROM audit_checkpoints WHERE size=?`, size).Scan(&note)
	old := sigLine(t, db, size)
	note = append(note[:len(note)-len(old)-1], sig+"\n"...)
	mustExec(t, db, `UPDATE audit_checkpoints SET note=? WHERE size=?`, note, size)
}

// TestMutations (AUDIT-1): 1,000 trials, each one random change to the stored
// log; verification (with the witness checkpoint a client kept) fails in
// every one, and passes on the untouched log before and after.
func TestMutations(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	st := db.Audit()
	l := openLog(t, st, newKey(t))
	// Six checkpoints over 60 events.
	for i := 0; i < 6; i++ {
		for j := 0; j < 10; j++ {
			if _, err := l.Append(ctx, testEvent(i*10+j)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := l.Publish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A checkpoint of the same origin and size signed by another key.
	forger := openLog(t, newDB(t).Audit(), newKey(t))
	appendN(t, forger, 60)
	fcp, err := forger.Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	forgedNote = fcp.Note
	witness, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key := l.VerifierKey()
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	n := int64(witness.Size)
	opts := auditlog.StoreVerifyOptions{Witness: witness.Note, RequireCovered: true}
	verify := func() error {
		_, err := auditlog.VerifyStore(ctx, st, key, opts)
		return err
	}
	if err := verify(); err != nil {
		t.Fatalf("untouched log: %v", err)
	}

	// The attacker owns the file: drop the append-only triggers first.
	st.Close() // release the store's write connection; the test takes the pool
	sqlDB := db.SQL()
	sqlDB.SetMaxOpenConns(1)
	mustExec(t, sqlDB, `PRAGMA synchronous=OFF`)
	for _, trg := range []string{"audit_leaves_no_update", "audit_leaves_no_delete", "audit_checkpoints_no_delete", "audit_checkpoints_token_only"} {
		mustExec(t, sqlDB, `DROP TRIGGER `+trg)
	}
	mustExec(t, sqlDB, `CREATE TEMP TABLE pristine_leaves AS SELECT * FROM audit_leaves`)
	mustExec(t, sqlDB, `CREATE TEMP TABLE pristine_cps AS SELECT * FROM audit_checkpoints`)
	restore := func() {
		mustExec(t, sqlDB, `DELETE FROM audit_leaves`)
		mustExec(t, sqlDB, `INSERT INTO audit_leaves SELECT * FROM pristine_leaves`)
		mustExec(t, sqlDB, `DELETE FROM audit_checkpoints`)
		mustExec(t, sqlDB, `INSERT INTO audit_checkpoints SELECT * FROM pristine_cps`)
	}

	const trials = 1000
	r := rand.New(rand.NewPCG(42, 1))
	caught := map[string]int{}
	for trial := 0; trial < trials; trial++ {
		m := mutations[r.IntN(len(mutations))]
		m.apply(t, sqlDB, r, n)
		if err := verify(); err == nil {
			t.Fatalf("trial %d: %q was not detected", trial, m.name)
		}
		caught[m.name]++
		restore()
		if trial%100 == 99 {
			if err := verify(); err != nil {
				t.Fatalf("after restoring trial %d: %v", trial, err)
			}
		}
	}
	if len(caught) != len(mutations) {
		t.Fatalf("only %d of %d mutation kinds were tried", len(caught), len(mutations))
	}
	t.Logf("1000/1000 mutations detected: %v", caught)
}
