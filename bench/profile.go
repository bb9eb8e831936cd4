package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
)

// Profiles of the loaded steady state (-profile DIR). Both routes run in one process, so one profile of the whole
// level would mix them; each measured round is profiled on its own instead, into cpu-plain-N.pprof or
// cpu-<route>-N.pprof (N is the pair), and rounds.tsv records how many requests each round served. Per request:
//
//	go tool pprof -top -tagfocus role=caddy DIR/cpu-plain-*.pprof     # the control route's rounds
//	go tool pprof -top -tagfocus role=caddy DIR/cpu-injector-*.pprof  # the measured route's
//
// divided by the rounds' requests: the difference is what the measured route costs, wherever it is spent. Item 7
// does the same per kind, each with the control rounds paired with it (scale-cpu-bearer-50000-N.pprof and
// scale-cpu-control-bearer-50000-N.pprof, ...). go run ./bench/perrequest DIR prints all of it per request.

// profileRound starts the CPU profile of one measured round of route; stop ends it and records the round's
// requests. Without plan.ProfileDir both do nothing.
func (plan steadyPlan) profileRound(measured bool, pair int) (stop func(requests int) error, err error) {
	route := "plain"
	if measured {
		route = plan.Route
	}
	return profileRound(plan.ProfileDir, plan.ProfilePrefix, route, pair)
}

// profileRound profiles one round into dir/<prefix>cpu-<route>-<pair>.pprof and, when stopped, adds the round's
// requests to dir/<prefix>rounds.tsv. An empty dir profiles nothing.
func profileRound(dir, prefix, route string, pair int) (stop func(requests int) error, err error) {
	if dir == "" {
		return func(int) error { return nil }, nil
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%scpu-%s-%d.pprof", prefix, route, pair)))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func(requests int) error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return err
		}
		return appendLine(filepath.Join(dir, prefix+"rounds.tsv"), fmt.Sprintf("%s\t%d\t%d\n", route, pair, requests))
	}, nil
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
