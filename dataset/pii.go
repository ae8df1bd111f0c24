package dataset

import (
	"bytes"
	"net/netip"
)

// PII kinds detected at upload (DATA-6).
const (
	PIIEmail = "email"
	PIIPhone = "phone"
	PIICard  = "payment_card"
	PIIIBAN  = "iban"
	PIISSN   = "us_ssn"
	PIIIP    = "ip_address"
)

// PIIKinds lists every detector.
var PIIKinds = []string{PIIEmail, PIIPhone, PIICard, PIIIBAN, PIISSN, PIIIP}

const maxPIIRows = 20

type piiCounts struct {
	n    [6]int64
	rows []int64
}

// count adds one field's detections (bit k = PIIKinds[k]).
func (p *piiCounts) count(bits uint8) {
	for k := range 6 {
		if bits&(1<<k) != 0 {
			p.n[k]++
		}
	}
}

// addRow remembers row as one with identifiers (the first maxPIIRows).
func (p *piiCounts) addRow(row int64) {
	if len(p.rows) < maxPIIRows && (len(p.rows) == 0 || p.rows[len(p.rows)-1] != row) {
		p.rows = append(p.rows, row)
	}
}

// DetectPII returns a bit set (bit i = PIIKinds[i]) of the identifiers in f.
// numeric says f already parsed as a plain number.
func DetectPII(f []byte, numeric bool) uint8 {
	if len(f) < 6 || numeric && len(f) < 9 {
		return 0
	}
	var digits, dots, colons int
	at, upper := false, false
	for _, b := range f {
		switch {
		case b >= '0' && b <= '9':
			digits++
		case b == '@':
			at = true
		case b == '.':
			dots++
		case b == ':':
			colons++
		case b >= 'A' && b <= 'Z':
			upper = true
		}
	}
	var out uint8
	if numeric {
		// Only a bare card number or an E.164 phone number ("+" and 8-15
		// digits) can hide in a plain number.
		if digits >= 13 && digits <= 19 && dots == 0 && hasCard(f) {
			out |= 1 << 2
		} else if f[0] == '+' && dots == 0 && digits >= 8 && digits <= 15 && len(f) == digits+1 {
			out |= 1 << 1
		}
		return out
	}
	if at && hasEmail(f) {
		out |= 1 << 0
	}
	if digits >= 9 {
		if hasCard(f) {
			out |= 1 << 2
		} else if hasPhone(f) {
			out |= 1 << 1
		}
		if hasSSN(f) {
			out |= 1 << 4
		}
	}
	if upper && digits >= 8 && hasIBAN(f) {
		out |= 1 << 3
	}
	if (dots >= 3 && digits >= 4) || colons >= 2 {
		if hasIP(f) {
			out |= 1 << 5
		}
	}
	return out
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }
func isAlnum(b byte) bool {
	return isDigit(b) || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}

func isLocal(b byte) bool {
	return isAlnum(b) || b == '.' || b == '_' || b == '%' || b == '+' || b == '-'
}

// hasEmail finds local@domain.tld with a letters-only TLD of 2+ letters.
func hasEmail(f []byte) bool {
	for i := 0; i < len(f); i++ {
		if f[i] != '@' {
			continue
		}
		l := i
		for l > 0 && isLocal(f[l-1]) {
			l--
		}
		if l == i || f[l] == '.' || f[i-1] == '.' {
			continue
		}
		r := i + 1
		for r < len(f) && (isAlnum(f[r]) || f[r] == '-' || f[r] == '.') {
			r++
		}
		dom := bytes.TrimRight(f[i+1:r], ".")
		labels := bytes.Split(dom, []byte{'.'})
		if len(labels) < 2 {
			continue
		}
		ok := true
		for _, lb := range labels {
			if len(lb) == 0 || len(lb) > 63 || lb[0] == '-' || lb[len(lb)-1] == '-' {
				ok = false
				break
			}
		}
		tld := labels[len(labels)-1]
		if !ok || len(tld) < 2 {
			continue
		}
		for _, b := range tld {
			if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z') {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// digitRuns calls fn with each maximal run of digits joined by single
// separators in seps, as the digits alone and the raw span.
func digitRuns(f []byte, seps string, fn func(digits []byte, start, end int) bool) bool {
	var buf [40]byte
	for i := 0; i < len(f); {
		if !isDigit(f[i]) {
			i++
			continue
		}
		start := i
		d := buf[:0]
		j := i
		for j < len(f) {
			if isDigit(f[j]) {
				if len(d) < cap(buf) {
					d = append(d, f[j])
				} else {
					d = d[:0:0]
				}
				j++
				continue
			}
			if j+1 < len(f) && bytes.IndexByte([]byte(seps), f[j]) >= 0 && isDigit(f[j+1]) {
				j++
				continue
			}
			break
		}
		if fn(d, start, j) {
			return true
		}
		i = j
	}
	return false
}

func boundary(f []byte, start, end int) bool {
	okL := start == 0 || !(isAlnum(f[start-1]) || f[start-1] == '.' || f[start-1] == '-')
	okR := end == len(f) || !(isAlnum(f[end]) || f[end] == '-' || (f[end] == '.' && end+1 < len(f) && isDigit(f[end+1])))
	return okL && okR
}

// luhn checks the payment card check digit.
func luhn(d []byte) bool {
	sum, dbl := 0, false
	for i := len(d) - 1; i >= 0; i-- {
		x := int(d[i] - '0')
		if dbl {
			x *= 2
			if x > 9 {
				x -= 9
			}
		}
		sum += x
		dbl = !dbl
	}
	return sum%10 == 0
}

// cardPrefix checks the issuer prefix of major schemes (Visa, Mastercard,
// Amex, Discover, JCB, Diners, UnionPay, Maestro).
func cardPrefix(d []byte) bool {
	p2 := int(d[0]-'0')*10 + int(d[1]-'0')
	p4 := p2*100 + int(d[2]-'0')*10 + int(d[3]-'0')
	switch {
	case d[0] == '4':
		return true
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720:
		return true
	case p2 == 34 || p2 == 37 || p2 == 36 || p2 == 38 || p2 == 30:
		return true
	case p4 == 6011 || p2 == 65 || p2 == 62 || p2 == 35 || p2 == 50 || p2 == 56 || p2 == 57 || p2 == 58 || p2 == 63 || p2 == 67:
		return true
	}
	return false
}

func hasCard(f []byte) bool {
	return digitRuns(f, " -", func(d []byte, s, e int) bool {
		return len(d) >= 13 && len(d) <= 19 && boundary(f, s, e) && cardPrefix(d) && luhn(d)
	})
}

// hasPhone finds international (+ and 8-15 digits) or separated national
// numbers of 10-15 digits, e.g. "+44 20 7946 0958", "(415) 555-2671",
// "415.555.2671". A bare run of digits is not a phone number: too many
// amounts and identifiers look like one.
func hasPhone(f []byte) bool {
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c != '+' && c != '(' && !isDigit(c) {
			continue
		}
		if i > 0 && (isAlnum(f[i-1]) || f[i-1] == '.' || f[i-1] == '-' || f[i-1] == '+') {
			continue
		}
		plus := c == '+'
		j := i
		if plus {
			j++
		}
		nd, seps, paren := 0, 0, false
		for j < len(f) {
			b := f[j]
			switch {
			case isDigit(b):
				nd++
			case b == '(' && nd <= 4:
				paren = true
				seps++
			case b == ')' && paren:
				seps++
			case (b == ' ' || b == '-' || b == '.') && j+1 < len(f) && (isDigit(f[j+1]) || f[j+1] == '('):
				seps++
			default:
				goto done
			}
			j++
		}
	done:
		end := j
		for end > i && !isDigit(f[end-1]) {
			end--
		}
		if end < len(f) && (isAlnum(f[end]) || (f[end] == '.' && end+1 < len(f) && isDigit(f[end+1]))) {
			i = j
			continue
		}
		if plus && nd >= 8 && nd <= 15 {
			return true
		}
		if !plus && seps >= 2 && nd >= 10 && nd <= 15 && !looksLikeDate(f[i:end]) {
			return true
		}
		if j > i {
			i = j - 1
		}
	}
	return false
}

func looksLikeDate(b []byte) bool {
	// 2024-01-02 12:30:00 style runs have ':' and are cut before; dates
	// alone have 8 digits and never reach 10.
	return bytes.Count(b, []byte{'-'}) == 2 && len(b) == 10 && b[4] == '-'
}

// hasSSN finds ddd-dd-dddd with the SSA's never-issued values excluded.
func hasSSN(f []byte) bool {
	for i := 0; i+11 <= len(f); i++ {
		s := f[i : i+11]
		if s[3] != '-' || s[6] != '-' {
			continue
		}
		ok := true
		for _, k := range []int{0, 1, 2, 4, 5, 7, 8, 9, 10} {
			if !isDigit(s[k]) {
				ok = false
				break
			}
		}
		if !ok || !boundary(f, i, i+11) {
			continue
		}
		area := string(s[0:3])
		if area == "000" || area == "666" || s[0] == '9' || string(s[4:6]) == "00" || string(s[7:11]) == "0000" {
			continue
		}
		return true
	}
	return false
}

// ibanLen is the IBAN length per country (ISO 13616 registry, common ones).
var ibanLen = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
	"CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24,
	"FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21,
	"HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21,
	"LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30,
	"NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
	"SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}

// hasIBAN finds an IBAN (compact or in groups of four) whose length fits
// its country and whose mod-97 check is 1.
func hasIBAN(f []byte) bool {
	for i := 0; i+15 <= len(f); i++ {
		if !(f[i] >= 'A' && f[i] <= 'Z' && f[i+1] >= 'A' && f[i+1] <= 'Z' && isDigit(f[i+2]) && isDigit(f[i+3])) {
			continue
		}
		if i > 0 && isAlnum(f[i-1]) {
			continue
		}
		want, ok := ibanLen[string(f[i:i+2])]
		if !ok {
			continue
		}
		var buf [34]byte
		n := 0
		j := i
		for j < len(f) && n < want {
			b := f[j]
			if isDigit(b) || b >= 'A' && b <= 'Z' {
				buf[n] = b
				n++
				j++
			} else if b == ' ' && j+1 < len(f) && isAlnum(f[j+1]) && (n%4 == 0) {
				j++
			} else {
				break
			}
		}
		if n != want || (j < len(f) && isAlnum(f[j])) {
			continue
		}
		if mod97(buf[:n]) == 1 {
			return true
		}
	}
	return false
}

func mod97(s []byte) int {
	r := 0
	add := func(v int) {
		if v >= 10 {
			r = (r*100 + v) % 97
		} else {
			r = (r*10 + v) % 97
		}
	}
	for _, b := range s[4:] {
		add(charVal(b))
	}
	for _, b := range s[:4] {
		add(charVal(b))
	}
	return r
}

func charVal(b byte) int {
	if isDigit(b) {
		return int(b - '0')
	}
	return int(b-'A') + 10
}

// hasIP finds dotted-quad IPv4 or IPv6 addresses as whole tokens.
func hasIP(f []byte) bool {
	start := -1
	for i := 0; i <= len(f); i++ {
		tok := i < len(f) && (isAlnum(f[i]) || f[i] == '.' || f[i] == ':')
		if tok && start < 0 {
			start = i
		}
		if !tok && start >= 0 {
			t := bytes.TrimRight(f[start:i], ".:")
			start = -1
			if len(t) < 7 || len(t) > 45 {
				continue
			}
			a, err := netip.ParseAddr(string(t))
			if err != nil {
				continue
			}
			if a.Is4() && bytes.Count(t, []byte{'.'}) == 3 {
				return true
			}
			if a.Is6() && bytes.Count(t, []byte{':'}) >= 2 && !a.Is4In6() {
				return true
			}
		}
	}
	return false
}
