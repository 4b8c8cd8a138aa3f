package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"sbc/control"
	"sbc/control/store"
	"sbc/sbc"

	"golang.org/x/term"
)

// The control-plane commands work on the store named by the config, next
// to a running daemon or without one (the daemon sees their changes within
// a second). Each change is audited with actor "cli".
//
//	sbc account create -name NAME [-cps N] [-max-concurrent N] [-class C]
//	sbc account list
//	sbc account suspend|activate|close SID
//	sbc user add -account SID -username NAME   (password on stdin)
//	sbc number add -account SID -number +E164 [-target trunk:NAME]
//	sbc calls list [-account SID] [-status S] [-limit N]
//	sbc registrations [-account SID] [-username NAME]
//	sbc backup -out FILE
//	sbc admin-token                            (a new operator credential)

// adminCommands are the commands this file runs; their first word.
var adminCommands = map[string]bool{"account": true, "user": true, "number": true, "calls": true, "backup": true, "admin-token": true,
	"registrations": true}

func runAdmin(cmd string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	sub := ""
	if cmd != "backup" && cmd != "admin-token" && cmd != "registrations" {
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			fmt.Fprintf(stderr, "sbc %s: want a subcommand (see sbc help)\n", cmd)
			return exitConfig
		}
		sub, args = args[0], args[1:]
	}
	name := strings.TrimSpace("sbc " + cmd + " " + sub)
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "sbc.toml", "path of the TOML configuration file")
	acct := fs.String("account", "", "account SID (AC…)")
	nameF := fs.String("name", "", "account name")
	cps := fs.Int("cps", 0, "calls per second (default: control.defaults)")
	maxC := fs.Int("max-concurrent", 0, "concurrent calls (default: control.defaults)")
	class := fs.String("class", "", "class of restriction")
	username := fs.String("username", "", "SIP username")
	number := fs.String("number", "", "E.164 number, e.g. +14155550100")
	target := fs.String("target", "", "where the number's calls go: trunk:NAME or user:NAME (default: the dial plan)")
	status := fs.String("status", "", "call status filter")
	limit := fs.Int("limit", 50, "rows at most")
	out := fs.String("out", "", "backup file (must not exist)")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	cfg, err := sbc.LoadConfig(*path)
	if err != nil {
		fmt.Fprintf(stderr, "sbc: %s: %v\n", *path, err)
		return exitConfig
	}
	ctx := context.Background()
	st, err := store.Open(ctx, cfg.Control.StorePath())
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitFail
	}
	defer st.Close()
	p := control.New(cfg.Control, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	fail := func(err error) int {
		var fe *control.FieldError
		if errors.As(err, &fe) {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return exitConfig
		}
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitFail
	}
	positional := func() (string, bool) {
		if fs.NArg() != 1 || !store.ValidSID(store.PrefixAccount, fs.Arg(0)) {
			fmt.Fprintf(stderr, "%s: want one account SID (AC and 32 hex digits)\n", name)
			return "", false
		}
		return fs.Arg(0), true
	}
	const actor = "cli"
	switch cmd + " " + sub {
	case "account create":
		if *nameF == "" {
			fmt.Fprintf(stderr, "%s: -name is required\n", name)
			return exitConfig
		}
		spec := control.AccountSpec{Name: nameF}
		if *cps != 0 {
			spec.CPS = cps
		}
		if *maxC != 0 {
			spec.MaxConcurrent = maxC
		}
		if *class != "" {
			spec.Class = class
		}
		a, token, err := p.CreateAccount(ctx, actor, spec)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "account_sid %s\nauth_token  %s\n(the token is shown once; rotate it with the API if lost)\n", a.SID, token)
	case "account list":
		accounts, err := st.Accounts(ctx)
		if err != nil {
			return fail(err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SID\tNAME\tSTATUS\tCPS\tMAX CONCURRENT\tCLASS\tBALANCE")
		for _, a := range accounts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", a.SID, a.Name, a.Status, a.CPS, a.MaxConcurrent, a.Class, a.Balance)
		}
		tw.Flush()
	case "account suspend", "account activate", "account close":
		sid, ok := positional()
		if !ok {
			return exitConfig
		}
		s := map[string]string{"suspend": store.StatusSuspended, "activate": store.StatusActive, "close": store.StatusClosed}[sub]
		a, err := p.UpdateAccount(ctx, actor, sid, control.AccountSpec{Status: &s})
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "%s %s\n", a.SID, a.Status)
	case "user add":
		fmt.Fprintln(stderr, "password (one line on stdin; never as an argument, which ps shows):")
		pw, err := readPassword(stdin)
		if err != nil {
			return fail(fmt.Errorf("read the password: %w", err))
		}
		u, err := p.CreateUser(ctx, actor, *acct, *username, pw, *class)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "user_sid %s\nusername %s\nrealm    %s\n", u.SID, u.Username, u.Realm)
	case "number add":
		n, err := p.CreateNumber(ctx, actor, *acct, control.NumberSpec{PhoneNumber: number, VoiceTarget: target})
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "number_sid %s\nnumber     %s\ntarget     %s\n", n.SID, n.PhoneNumber, n.VoiceTarget)
	case "calls list":
		calls, err := st.ListCalls(ctx, store.CallFilter{AccountSID: *acct, Status: *status}, store.Page{Size: *limit})
		if err != nil {
			return fail(err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SID\tACCOUNT\tCREATED\tFROM\tTO\tDIRECTION\tSTATUS\tSIP\tDURATION")
		for _, c := range calls {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%ds\n", c.SID, c.AccountSID, c.Created.Format(time.RFC3339),
				c.From, c.To, c.Direction, c.Status, c.SIPCode, c.Duration)
		}
		tw.Flush()
	case "registrations ":
		regs, err := st.Registrations(ctx, store.RegistrationFilter{AccountSID: *acct, Username: *username}, time.Now())
		if err != nil {
			return fail(err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tACCOUNT\tCONTACT\tTRANSPORT\tSOURCE\tNODE\tEXPIRES\tUSER AGENT")
		for _, g := range regs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.Username, g.AccountSID, g.Contact, g.Transport, g.Source, g.Node,
				g.Expires.Format(time.RFC3339), g.UserAgent)
		}
		tw.Flush()
	case "backup ":
		if *out == "" {
			fmt.Fprintf(stderr, "%s: -out FILE is required\n", name)
			return exitConfig
		}
		if err := st.Backup(ctx, *out); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "%s: consistent snapshot of %s\n", *out, cfg.Control.StorePath())
	case "admin-token ":
		sid, token, err := p.SetAdmin(ctx, actor, "")
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "admin_sid   %s\nadmin_token %s\n(HTTP Basic user and password of the API; shown once)\n", sid, token)
	default:
		fmt.Fprintf(stderr, "sbc %s: unknown subcommand %q\n", cmd, sub)
		return exitConfig
	}
	return exitOK
}

// readPassword reads one line: from a terminal without echoing it, else
// as it comes (a pipe, a file).
func readPassword(in io.Reader) (string, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		b, err := term.ReadPassword(int(f.Fd()))
		return string(b), err
	}
	pw, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && pw == "" {
		return "", err
	}
	return strings.TrimRight(pw, "\r\n"), nil
}
