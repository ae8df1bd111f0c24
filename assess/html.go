package assess

import (
	"bytes"
	"fmt"
	"html/template"
	"image/color"
	"io"
	"math"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// palette of line colours (colour-blind safe, Okabe–Ito).
var palette = []color.RGBA{
	{0, 114, 178, 255}, {213, 94, 0, 255}, {0, 158, 115, 255}, {204, 121, 167, 255},
	{230, 159, 0, 255}, {86, 180, 233, 255}, {0, 0, 0, 255}, {240, 228, 66, 255},
}

type series struct {
	name   string
	pts    plotter.XYs
	dashed bool
}

// svgPlot draws line series as an inline SVG element (fonts not
// embedded: the page names common font families and opens offline).
func svgPlot(title, xl, yl string, logX, logY bool, ymin, ymax float64, ss []series) (figure, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xl
	p.Y.Label.Text = yl
	if logX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	p.Add(plotter.NewGrid())
	var fig figure
	for i, s := range ss {
		if len(s.pts) == 0 {
			continue
		}
		l, sc, err := plotter.NewLinePoints(s.pts)
		if err != nil {
			return fig, fmt.Errorf("plot %q: %w", title, err)
		}
		c := palette[i%len(palette)]
		l.Color, sc.Color = c, c
		l.Width = vg.Points(1.5)
		sc.Radius = vg.Points(1.5)
		sc.Shape = draw.CircleGlyph{}
		if len(s.pts) > 60 {
			sc.Radius = 0
		}
		if s.dashed {
			l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		p.Add(l, sc)
		fig.Legend = append(fig.Legend, legendItem{Name: s.name, Color: fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B), Dashed: s.dashed})
	}
	if len(fig.Legend) == 0 {
		return fig, nil
	}
	if !math.IsNaN(ymin) {
		p.Y.Min = ymin
	}
	if !math.IsNaN(ymax) {
		p.Y.Max = ymax
	}
	c := vgsvg.NewWith(vgsvg.UseWH(6.5*vg.Inch, 4*vg.Inch), vgsvg.EmbedFonts(false))
	p.Draw(draw.New(c))
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return fig, fmt.Errorf("plot %q: %w", title, err)
	}
	s := b.String()
	if i := strings.Index(s, "<svg"); i >= 0 {
		s = s[i:] // drop the XML prolog: the SVG is inlined
	}
	fig.SVG = template.HTML(s) // drawn by gonum/plot from numbers; the series names are in the HTML legend, escaped
	return fig, nil
}

// figure is an inline SVG plot with its legend, which is HTML (the
// browser's fonts lay it out, so it never overflows the plot).
type figure struct {
	SVG    template.HTML
	Legend []legendItem
}

type legendItem struct {
	Name, Color string
	Dashed      bool
}

// rocSeries keeps the points a log–log plot can show.
func rocSeries(name string, pts []ROCPoint) series {
	s := series{name: name}
	for _, p := range pts {
		if p.FPR > 0 && p.TPR > 0 {
			s.pts = append(s.pts, plotter.XY{X: p.FPR, Y: p.TPR})
		}
	}
	return s
}

type htmlView struct {
	R          *Report
	ROC        figure
	Fidelity   figure
	Evasion    figure
	Generated  string
	ROCNote    string
	HasContent bool
}

// WriteHTML renders the report as one self-contained HTML page: inline
// CSS and SVG plots, no scripts, no external resources, so it opens
// offline and under a strict Content-Security-Policy.
func (r *Report) WriteHTML(w io.Writer) error {
	v := htmlView{R: r, Generated: r.Created.UTC().Format("2006-01-02 15:04:05 UTC")}
	var err error
	if m := r.Membership; m != nil && len(m.Attacks) > 0 {
		var ss []series
		minF := 1.0 / float64(max(m.NonMembers, 1))
		for _, a := range m.Attacks {
			ss = append(ss, rocSeries(a.Name, a.ROC))
		}
		diag := series{name: "chance (TPR = FPR)", dashed: true}
		for x := minF; x <= 1; x *= 1.5 {
			diag.pts = append(diag.pts, plotter.XY{X: x, Y: x})
		}
		diag.pts = append(diag.pts, plotter.XY{X: 1, Y: 1})
		ss = append(ss, diag)
		if r.Model.DP != nil {
			e := math.Exp(r.Model.DP.Epsilon)
			b := series{name: fmt.Sprintf("DP bound e^ε·FPR+δ (ε=%.3g)", r.Model.DP.Epsilon), dashed: true}
			for x := minF; x <= 1; x *= 1.5 {
				b.pts = append(b.pts, plotter.XY{X: x, Y: math.Min(1, e*x+r.Model.DP.Delta)})
			}
			ss = append(ss, b)
		}
		if v.ROC, err = svgPlot("Membership inference ROC (log–log)", "false positive rate", "true positive rate", true, true, math.NaN(), 1, ss); err != nil {
			return err
		}
		v.ROCNote = fmt.Sprintf("Points at FPR = 0 or TPR = 0 cannot be drawn on log axes; the smallest measurable FPR is 1/%d.", m.NonMembers)
	}
	if len(r.Extraction) > 0 {
		var ss []series
		for _, e := range r.Extraction {
			for _, c := range e.Curves {
				g, _, _ := strings.Cut(e.Guards, " ")
				s := series{name: fmt.Sprintf("%s, guards %s", c.Strategy, g), dashed: e.Guards != "off"}
				for _, p := range c.Points {
					s.pts = append(s.pts, plotter.XY{X: float64(p.Queries), Y: p.Fidelity})
				}
				ss = append(ss, s)
			}
		}
		if v.Fidelity, err = svgPlot("Extraction: surrogate fidelity vs queries", "queries obtained", "fidelity (label agreement)", true, false, 0, 1, ss); err != nil {
			return err
		}
	}
	if len(r.Evasion) > 0 {
		var ss []series
		for _, e := range r.Evasion {
			s := series{name: e.Model + " / " + e.Method}
			for _, p := range e.Curve {
				s.pts = append(s.pts, plotter.XY{X: p.Budget, Y: p.SuccessRate})
			}
			ss = append(ss, s)
		}
		if v.Evasion, err = svgPlot("Evasion: success rate vs perturbation budget", "L2 budget (training standard deviations)", "attack success rate", true, false, 0, 1, ss); err != nil {
			return err
		}
	}
	return htmlTemplate.Execute(w, v)
}

var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct": func(v float64) string { return fmt.Sprintf("%.1f %%", 100*v) },
	"f3":  func(v float64) string { return fmt.Sprintf("%.3f", v) },
	"iv": func(i Interval) string {
		return fmt.Sprintf("%.3f [%.3f, %.3f]", i.Value, i.Lo, i.Hi)
	},
	"secs": func(v float64) string { return fmt.Sprintf("%.2f s", v) },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>{{.R.Title}}</title>
<style>
body{font-family:"Liberation Sans",Helvetica,Arial,sans-serif;margin:2em auto;max-width:60em;color:#222;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.bad{color:#b00;font-weight:bold}.ok{color:#070}
.note{color:#555;font-size:.9em}ul.legend{list-style:none;padding:0;margin:.2em 0;font-size:.9em;columns:2}
.sw{display:inline-block;width:2.2em;border-top:3px solid;margin-right:.5em;vertical-align:middle}figure{margin:1em 0}svg{max-width:100%;height:auto}
</style></head><body>
<h1 id="title">{{.R.Title}}</h1>
<p>Model <b>{{.R.Model.Name}}{{if .R.Model.Version}} v{{.R.Model.Version}}{{end}}</b> ({{.R.Model.Algorithm}}){{if .R.Model.Dataset}}, data {{.R.Model.Dataset}}{{end}}{{if .R.Model.Endpoint}}, endpoint {{.R.Model.Endpoint}}{{end}}{{if .R.Model.DP}}, trained with (ε = {{f3 .R.Model.DP.Epsilon}}, δ = {{.R.Model.DP.Delta}})-DP{{end}}.
{{if .R.Model.Digest}}Digest <code>{{.R.Model.Digest}}</code>.{{end}} Generated {{.Generated}}, seed {{.R.Seed}}.</p>
{{with .R.Membership}}
<h2 id="membership">Membership inference (PRIV-1)</h2>
<p>{{.Members}} members, {{.NonMembers}} non-members; outputs: {{.Output}}. Accuracy on members {{pct .MemberAccuracy}}, on non-members {{pct .NonMemberAccuracy}}.{{if .ShadowModels}} {{.ShadowModels}} shadow models.{{end}}</p>
<table><tr><th class="l">attack</th><th>AUC [95 % CI]</th><th>TPR @ 1 % FPR</th><th>TPR @ 0.1 % FPR</th><th>DP check</th></tr>
{{range .Attacks}}<tr><td class="l">{{.Name}}</td><td>{{iv .AUC}}</td><td>{{iv .TPR1}}</td><td>{{iv .TPR01}}</td>
<td class="l">{{with .DP}}{{if .Violated}}<span class="bad">VIOLATED</span>: {{.Violations}} of {{.Points}} points{{else}}<span class="ok">within bound</span>{{end}}; measured ε lower bound {{f3 .EpsilonLowerBound}} (guarantee ε = {{f3 .Epsilon}}); {{.PointViolations}} of {{.Points}} raw points outside, within sampling error{{else}}n/a (not a DP model){{end}}</td></tr>
{{end}}</table>
{{range .Attacks}}{{if .Detail}}<p class="note">{{.Name}}: {{.Detail}}</p>{{end}}{{end}}
{{range .Skipped}}<p class="note">Skipped: {{.}}</p>{{end}}
{{end}}
{{if .ROC.SVG}}<figure id="roc-plot">{{template "fig" .ROC}}<figcaption class="note">{{.ROCNote}}</figcaption></figure>{{end}}
{{if .R.Extraction}}
<h2 id="extraction">Extraction (PRIV-2)</h2>
{{range .R.Extraction}}<h3>Guards {{.Guards}}</h3>
<p>Surrogate: {{.Surrogate}}; fidelity = label agreement with the model on {{.EvalRows}} held-out rows.</p>
<table><tr><th class="l">strategy</th><th>queries → fidelity</th><th>obtained</th><th class="l">refused</th><th class="l">flagged</th></tr>
{{range .Curves}}<tr><td class="l">{{.Strategy}}</td><td class="l">{{range .Points}}{{.Queries}}: {{f3 .Fidelity}}; {{end}}</td><td>{{.Obtained}}</td><td class="l">{{.Refused}}</td><td class="l">{{if .FlaggedAt}}after {{.FlaggedAt}} queries: {{.FlagReason}}{{else}}no{{end}}</td></tr>
{{end}}</table>{{end}}
{{end}}
{{if .Fidelity.SVG}}<figure id="fidelity-plot">{{template "fig" .Fidelity}}<figcaption class="note">Dashed: with the endpoint's guards.</figcaption></figure>{{end}}
{{if .R.Evasion}}
<h2 id="evasion">Evasion (PRIV-3)</h2>
<table><tr><th class="l">model / method</th><th>attacked</th><th>found</th><th>median L2 (σ)</th><th>queries</th><th>OOD-caught adversarial</th><th>OOD-flagged clean</th></tr>
{{range .R.Evasion}}<tr><td class="l">{{.Model}} / {{.Method}}</td><td>{{.Attacked}}</td><td>{{.Found}}</td><td>{{f3 .Median}}</td><td>{{.Queries}}</td><td>{{pct .OODCaught}}</td><td>{{pct .CleanOOD}}</td></tr>
{{end}}</table>
<p class="note">Perturbations are L2 norms over the numeric features in units of each feature's training standard deviation; categorical features and missing values are not changed.</p>
{{end}}
{{if .Evasion.SVG}}<figure id="evasion-plot">{{template "fig" .Evasion}}</figure>{{end}}
{{with .R.Poisoning}}
<h2 id="poisoning">Poisoning drill (DATA-5)</h2>
<p>Screening: {{.Screening}}. {{.TrainRows}} training rows, {{.TestRows}} clean test rows.</p>
<table><tr><th>flipped</th><th>rows flipped</th><th>flagged</th><th>recall</th><th>precision</th><th>accuracy without screening</th><th>accuracy with screening</th></tr>
{{range .Points}}<tr><td>{{pct .Rate}}</td><td>{{.Flipped}}</td><td>{{.Flagged}}</td><td>{{if .Flipped}}{{f3 .Recall}}{{else}}–{{end}}</td><td>{{if .Flagged}}{{f3 .Precision}}{{else}}–{{end}}</td><td>{{pct .AccuracyUnscreened}}</td><td>{{pct .AccuracyScreened}}</td></tr>
{{end}}</table>
{{end}}
{{if .R.Timings}}<h2 id="timings">Wall time</h2><table>{{range $k, $v := .R.Timings}}<tr><td class="l">{{$k}}</td><td>{{secs $v}}</td></tr>{{end}}</table>{{end}}
{{range .R.Notes}}<p class="note">{{.}}</p>{{end}}
</body></html>
{{define "fig"}}{{.SVG}}<ul class="legend">{{range .Legend}}<li><span class="sw" style="border-top-color:{{.Color}}{{if .Dashed}};border-top-style:dashed{{end}}"></span>{{.Name}}</li>{{end}}</ul>{{end}}
`))
