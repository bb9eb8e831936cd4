package main

import (
	"fmt"
	"slices"
	"time"
)

// Targets of item 7 (issue 13).
const (
	scaleRatioTarget = 0.97
	scaleSpread      = 0.02 // the largest size's ratio within this of the smallest's
	scaleAddedP50    = 100 * time.Microsecond
	scaleAddedP99    = 500 * time.Microsecond
)

func (k scaleKindResult) ratio() (med, lo, hi float64) {
	if len(k.Ratios) == 0 {
		return 0, 0, 0
	}
	return median(k.Ratios), slices.Min(k.Ratios), slices.Max(k.Ratios)
}

func (s *scaleResult) rows(cfg Config) []Row {
	w, sc := s.Warm, s.SessionCheck
	rows := []Row{
		{"7", fmt.Sprintf("scale setup, %s users: caller tokens minted; downstream tokens cached (OBO for %d, %d seeded) and every caller token proven; sessions made; cookies opened once",
			count(s.Users), w.Requests, s.Seeded),
			fmt.Sprintf("%s s; %s s; %s s; %s s", secs(s.MintTook), secs(s.WarmTook), secs(s.SessionsTook), secs(s.OpenTook)), "", ""},
		{"7", "scale: OBO users served their own token through the checking stub, by bearer / by session cookie; every caller token proven; tokens of another user",
			fmt.Sprintf("%d / %d of %d; %d of %d; %d", w.Requests-w.Failures, sc.Requests-sc.Failures, w.Requests,
				s.Proved.Requests-s.Proved.Failures, s.Users, w.Mismatches+sc.Mismatches), "all; all; 0",
			verdict(w.Failures+sc.Failures+w.Mismatches+sc.Mismatches+s.Proved.Failures == 0 && s.Proved.Requests == s.Users)},
		{"7", "scale: proven-token cache after the warm-up (default bound 64 MiB): tokens, MiB",
			fmt.Sprintf("%d, %.1f MiB", s.Proven, float64(s.ProvenBytes)/(1<<20)), fmt.Sprintf("all %d", s.Users),
			verdict(s.Proven >= s.Users)},
		s.Control.row("7", "scale: "),
	}
	for _, l := range s.Levels {
		if l.Repeat == 0 {
			rows = append(rows, l.rows()...)
		}
	}
	if len(s.Levels) > 2 {
		rows = append(rows, s.spreadRows()...)
	}
	if s.Million.Entries > 0 {
		rows = append(rows, s.Million.rows()...)
	}
	return rows
}

func (l scaleLevel) rows() []Row {
	conn := fmt.Sprintf("%d conn", l.Conns)
	if l.Conns > 1 {
		conn += "s"
	}
	var rows []Row
	first := map[bool]float64{} // the smallest size's ratio, by path
	for _, k := range l.Kinds {
		if k.Control < 0 {
			continue
		}
		name := fmt.Sprintf("scale, %s: %s, %s users", conn, k.Name, count(k.Users))
		if k.Null {
			rows = append(rows, k.nullRow(name))
			continue
		}
		med, lo, hi := k.ratio()
		rows = append(rows,
			Row{"7", name + ": rps ratio against its control (median of passes; range)",
				fmt.Sprintf("%.3f (%.3f–%.3f)", med, lo, hi), fmt.Sprintf("≥ %.2f", scaleRatioTarget), verdict(med >= scaleRatioTarget)},
			Row{"7", name + ": added latency p50 / p99", fmt.Sprintf("%s / %s ms", ms(median(k.AddedP50)), ms(median(k.AddedP99))),
				"≤ 0.1 / ≤ 0.5 ms", verdict(median(k.AddedP50) <= scaleAddedP50 && median(k.AddedP99) <= scaleAddedP99)},
		)
		if k.Bearer {
			rows = append(rows, Row{"7", name + ": RSA verifications per second under load (median of rounds; max)",
				fmt.Sprintf("%.1f; %.1f", median(k.Verifications), slices.Max(k.Verifications)), "", ""})
		}
		if f, ok := first[k.Bearer]; !ok {
			first[k.Bearer] = med
		} else if k.Users == maxUsers(l.Kinds, k.Bearer) {
			rows = append(rows, Row{"7", fmt.Sprintf("scale, %s: %s, %s users' ratio minus the smallest size's", conn, k.Name, count(k.Users)),
				fmt.Sprintf("%+.3f", med-f), fmt.Sprintf("within ±%.2f", scaleSpread), verdict(med-f >= -scaleSpread && med-f <= scaleSpread)})
		}
	}
	notOK, n := 0, 0
	for _, k := range l.Kinds {
		notOK, n = notOK+k.NotOK, n+k.Requests
	}
	rows = append(rows, Row{"7", fmt.Sprintf("scale, %s: responses not 200, every kind", conn), fmt.Sprintf("%d of %d", notOK, n), "0", verdict(notOK == 0)})
	return rows
}

// nullRow shows what the pairs read for one route against itself: a ratio away from 1 is the harness's bias, its
// range what one pass can show.
func (k scaleKindResult) nullRow(name string) Row {
	med, lo, hi := k.ratio()
	return Row{"7", name + ": the bearer control against itself, rps ratio (median of passes; range); added p50 / p99",
		fmt.Sprintf("%.3f (%.3f–%.3f); %s / %s ms", med, lo, hi, ms(median(k.AddedP50)), ms(median(k.AddedP99))),
		"1.00: the harness's own bias", ""}
}

// spreadRows show each kind's median ratio in every repetition of the measurement: the spread between runs.
func (s *scaleResult) spreadRows() []Row {
	var rows []Row
	for li := 0; li < 2; li++ {
		for ki, k := range s.Levels[li].Kinds {
			if k.Control < 0 {
				continue
			}
			var meds []float64
			var vals string
			for _, l := range s.Levels {
				if l.Conns != s.Levels[li].Conns {
					continue
				}
				m, _, _ := l.Kinds[ki].ratio()
				meds = append(meds, m)
				vals += fmt.Sprintf("%.3f ", m)
			}
			rows = append(rows, Row{"7", fmt.Sprintf("scale spread, %d conn(s): %s, %s users: median ratio of each repetition (range)",
				s.Levels[li].Conns, k.Name, count(k.Users)),
				fmt.Sprintf("%s(%.3f)", vals, slices.Max(meds)-slices.Min(meds)), "", ""})
		}
	}
	return rows
}

func maxUsers(kinds []scaleKindResult, bearer bool) int {
	m := 0
	for _, k := range kinds {
		if k.Control >= 0 && !k.Null && k.Bearer == bearer {
			m = max(m, k.Users)
		}
	}
	return m
}

func (m millionResult) rows() []Row {
	b, _, _ := m.Before.Kinds[1].ratio()
	a, lo, hi := m.After.Kinds[1].ratio()
	users := count(m.After.Kinds[1].Users)
	return []Row{
		{"7", fmt.Sprintf("scale, %s more cached entries: filled in; held (cap %s); live heap per entry beyond its %d-byte header",
			count(m.Entries), count(m.CacheMaxEntries), m.TokenBytes),
			fmt.Sprintf("%s s; %s; %.0f B", secs(m.FillTook), count(m.Held), m.BytesPerEntry), "all; ≤ 512 B",
			verdict(m.Held >= m.Entries && m.BytesPerEntry <= 512)},
		{"7", fmt.Sprintf("scale, %d conns, bearer %s users: rps ratio before the fill / with the entries (range)", m.Conns, users),
			fmt.Sprintf("%.3f / %.3f (%.3f–%.3f)", b, a, lo, hi), "unchanged (±0.02)", verdict(a-b >= -scaleSpread)},
		{"7", fmt.Sprintf("scale, %d conns, bearer %s users, with the entries: added latency p50 / p99", m.Conns, users),
			fmt.Sprintf("%s / %s ms", ms(median(m.After.Kinds[1].AddedP50)), ms(median(m.After.Kinds[1].AddedP99))), "≤ 0.1 / ≤ 0.5 ms",
			verdict(median(m.After.Kinds[1].AddedP50) <= scaleAddedP50 && median(m.After.Kinds[1].AddedP99) <= scaleAddedP99)},
	}
}

// violations lists what is wrong with item 7 that is not a timing.
func (s *scaleResult) violations() []string {
	var v []string
	check := func(ok bool, format string, args ...any) {
		if !ok {
			v = append(v, fmt.Sprintf(format, args...))
		}
	}
	check(s.Warm.Requests > 0 && s.Warm.Failures+s.Warm.Mismatches == 0, "scale OBO warm-up: %+v", s.Warm)
	check(s.Proved.Requests == s.Users && s.Proved.Failures == 0, "scale: caller tokens proven: %+v", s.Proved)
	check(s.SessionCheck.Requests > 0 && s.SessionCheck.Failures+s.SessionCheck.Mismatches == 0, "scale session check: %+v", s.SessionCheck)
	check(len(s.Levels) >= 2 && len(s.Levels)%2 == 0, "scale: %d levels measured", len(s.Levels))
	check(s.Control.same(), "scale: %s", s.Control.violation())
	for _, l := range append(slices.Clone(s.Levels), s.Million.Before, s.Million.After) {
		for _, k := range l.Kinds {
			check(k.NotOK == 0, "scale %d conns, %s %d users: %d of %d not 200", l.Conns, k.Name, k.Users, k.NotOK, k.Requests)
		}
	}
	if s.Million.Entries > 0 {
		check(s.Million.Held >= s.Million.Entries, "scale: %d entries held after adding %d", s.Million.Held, s.Million.Entries)
	}
	return v
}
