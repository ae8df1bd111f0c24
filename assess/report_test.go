package assess

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart/ml"
)

// smallReport runs every attack briefly on breast_cancer.
func smallReport(t *testing.T) *Report {
	t.Helper()
	ctx := context.Background()
	data := loadFrame(t, "breast_cancer.csv")
	members, non := split(t, data, "diagnosis", 0.5, 8)
	spec := ml.TrainSpec{Algorithm: ml.LogReg, Target: "diagnosis", Seed: 8, DP: &ml.DPSpec{Epsilon: 1, Delta: 1e-4, Seeded: true}}
	m := train(t, members, spec)
	s := SpaceOf(m)
	rep := &Report{Title: "Assessment <test>", Model: ModelInfo{Name: "bc", Algorithm: m.Algorithm, Dataset: "breast_cancer",
		DP: &DPGuarantee{Epsilon: m.DP.Epsilon, Delta: m.DP.Delta}}, Created: time.Unix(0, 0), Seed: 8, Timings: map[string]float64{}}
	o := NewModelOracle(m, OutputPolicy{Mode: OutputProba, Decimals: 2})
	var err error
	if rep.Membership, err = Membership(ctx, MembershipConfig{Target: o, Space: s, Label: "diagnosis", Members: members, NonMembers: non,
		Bootstrap: 20, Seed: 8, DP: rep.Model.DP, Shadow: &ShadowConfig{Spec: spec, Models: 2, Decimals: 2}}); err != nil {
		t.Fatal(err)
	}
	rows, _ := s.Rows(non)
	y, _ := s.Labels(non, "diagnosis")
	for _, guards := range []string{"off", "on (budget 150)"} {
		budget := int64(0)
		if guards != "off" {
			budget = 150
		}
		ex, err := Extraction(ctx, ExtractionConfig{Target: func(context.Context, string) (Oracle, error) {
			o := NewModelOracle(m, OutputPolicy{Mode: OutputLabel, Decimals: -1})
			o.Budget = budget
			return o, nil
		}, Space: s, Budgets: []int{20, 100, 200}, Natural: rows[:200], Eval: rows[200:], EvalLabels: y[200:],
			Surrogate: ml.TrainSpec{Algorithm: ml.LogReg}})
		if err != nil {
			t.Fatal(err)
		}
		ex.Guards = guards
		rep.Extraction = append(rep.Extraction, ex)
	}
	ev, err := Evasion(ctx, EvasionConfig{Model: m, Space: s, Rows: rows, Labels: y, MaxRows: 20, OOD: zScorer{s, 4}})
	if err != nil {
		t.Fatal(err)
	}
	rep.Evasion = append(rep.Evasion, ev)
	rep.Timings["membership"] = 0.5
	return rep
}

func TestReportJSONAndHTML(t *testing.T) {
	rep := smallReport(t)
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Membership == nil || len(back.Extraction) != 2 || len(back.Evasion) != 1 || back.Membership.Attacks[0].DP == nil {
		t.Fatalf("round trip lost sections: %s", js.String()[:min(400, js.Len())])
	}
	var h bytes.Buffer
	if err := rep.WriteHTML(&h); err != nil {
		t.Fatal(err)
	}
	page := h.String()
	if n := strings.Count(page, "<svg"); n != 3 {
		t.Errorf("page has %d SVG plots, want 3", n)
	}
	for _, bad := range []string{"<script", "src=\"http", "href=\"http", "@import", "url(http"} {
		if strings.Contains(page, bad) {
			t.Errorf("page is not self-contained: contains %q", bad)
		}
	}
	if strings.Contains(page, "Assessment <test>") || !strings.Contains(page, "Assessment &lt;test&gt;") {
		t.Error("title not escaped")
	}
	if dir := os.Getenv("ASSESS_REPORT_DIR"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, "report.html"), h.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "report.json"), js.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The HTML page renders in a real headless browser (Debian's chromium).
// `make report-check` installs chromium and runs this test; without the
// browser it skips.
func TestReportRendersInChromium(t *testing.T) {
	const browser = "/usr/bin/chromium"
	if _, err := os.Stat(browser); err != nil {
		t.Skip("chromium not installed (/usr/bin/chromium): run `make report-check`, which installs it with apt-get")
	}
	rep := smallReport(t)
	dir := os.Getenv("ASSESS_REPORT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	dir, _ = filepath.Abs(dir)
	page := filepath.Join(dir, "report.html")
	var h bytes.Buffer
	if err := rep.WriteHTML(&h); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(page, h.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "report.png")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
		"--user-data-dir="+t.TempDir(), "--window-size=1280,2400", "--screenshot="+shot, "file://"+page)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v\n%s", err, out)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// The page must have drawn something: count non-white pixels, and
	// coloured ones (the plot lines).
	b := img.Bounds()
	dark, coloured := 0, 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r < 0xe000 || g < 0xe000 || bl < 0xe000 {
				dark++
			}
			if max(r, g, bl)-min(r, g, bl) > 0x4000 {
				coloured++
			}
		}
	}
	t.Logf("screenshot %s: %dx%d, %d dark and %d coloured sampled pixels", shot, b.Dx(), b.Dy(), dark, coloured)
	if dark < 2000 || coloured < 200 {
		t.Errorf("screenshot looks blank: %d dark, %d coloured sampled pixels", dark, coloured)
	}
}

func TestReportMetrics(t *testing.T) {
	rep := smallReport(t)
	m := rep.Metrics()
	for _, k := range []string{MetricMembershipAUC, MetricMembershipTPR1, MetricMembershipTPR01, MetricDPViolations, MetricExtraction, MetricExtractionGuarded, MetricEvasion1, MetricEvasionMedian} {
		if _, ok := m[k]; !ok {
			t.Errorf("metric %s missing: %v", k, m)
		}
	}
	best := 0.0
	for _, a := range rep.Membership.Attacks {
		best = max(best, a.AUC.Value)
	}
	if m[MetricMembershipAUC] != best || m[MetricEvasionMedian] != rep.Evasion[0].Median {
		t.Errorf("metrics %v disagree with the report", m)
	}
}
