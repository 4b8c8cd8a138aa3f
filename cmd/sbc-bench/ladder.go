//go:build linux

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"sbc/cmd/sbc-bench/internal/ladder"
)

// runLadder is `sbc-bench ladder [flags]`: the call-setup rate ladder
// (package ladder). Exit status: 0 every system passed some rate, 1 a
// system failed or passed none, 2 bad flags.
func runLadder(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg ladder.Config
	fs := flag.NewFlagSet("sbc-bench ladder", flag.ContinueOnError)
	fs.SetOutput(stderr)
	systems := fs.String("systems", "sbc,kamailio", "systems to measure in turn: sbc, kamailio (Kamailio + rtpengine), kamailio-nomedia")
	fs.IntVar(&cfg.Start, "start", 100, "first rate, calls/s")
	step := fs.String("step", "100", "added to the rate at each step (calls/s), or a factor written x1.5")
	fs.IntVar(&cfg.Max, "max", 5000, "highest rate, calls/s")
	fs.DurationVar(&cfg.StepDuration, "step-duration", 20*time.Second, "how long calls are placed at each rate")
	fs.DurationVar(&cfg.CallDuration, "call-duration", time.Second, "how long each call lasts once answered")
	fs.IntVar(&cfg.Retry, "retry", 1, "runs a failed step again up to this many times before the ladder stops")
	fs.StringVar(&cfg.SBCBin, "sbc-bin", "", "sbc daemon binary (default: go build sbc/cmd/sbc)")
	fs.IntVar(&cfg.PortMin, "port-min", 42000, "first media port of the sbc's and rtpengine's range")
	fs.IntVar(&cfg.KamailioChildren, "kamailio-children", 8, "Kamailio's UDP worker processes")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the configs, logs and sipp statistics (their directory is printed)")
	jsonPath := fs.String("json", "", "also write the results as JSON to this file")
	quiet := fs.Bool("quiet", false, "no progress lines")
	if err := fs.Parse(args); err != nil {
		return exitUsage // the flag package said why
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sbc-bench ladder: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	cfg.Systems = strings.Split(*systems, ",")
	for i := range cfg.Systems {
		cfg.Systems[i] = strings.TrimSpace(cfg.Systems[i])
	}
	var err error
	if cfg.Step, cfg.Factor, err = ladder.ParseStep(*step); err != nil {
		fmt.Fprintf(stderr, "sbc-bench ladder: -step: %v\n", err)
		return exitUsage
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "sbc-bench ladder: %v\n", err)
		return exitUsage
	}
	var progress io.Writer = stderr
	if *quiet {
		progress = nil
	}
	rep, err := ladder.Run(ctx, cfg, progress)
	if len(rep.Systems) > 0 {
		ladder.WriteTable(stdout, rep)
	}
	code := exitOK
	if err != nil {
		fmt.Fprintf(stderr, "sbc-bench ladder: %v\n", err)
		code = exitFail
	}
	for _, s := range rep.Systems {
		if s.MaxPassing == 0 {
			code = max(code, exitFail)
		}
	}
	if *jsonPath != "" && len(rep.Systems) > 0 {
		if err := ladder.WriteJSON(*jsonPath, rep); err != nil {
			fmt.Fprintf(stderr, "sbc-bench ladder: %v\n", err)
			return exitFail
		}
	}
	return code
}
