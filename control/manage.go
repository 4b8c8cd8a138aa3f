package control

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"

	"sbc/control/store"
)

// FieldError is a bad value given to a management operation: the API
// answers it with 400 naming the field.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// AccountSpec is what a new account or an account update sets; nil
// fields keep the default or the current value.
type AccountSpec struct {
	Name          *string
	Status        *string
	CPS           *int
	SMSPerSecond  *int
	MaxConcurrent *int
	Class         *string
	Balance       *store.Money
	// Adjust adds to the balance as it stands when the change is made
	// (a top-up, a refund; negative: a debit): charges committed
	// meanwhile are not undone, as a Balance computed from an earlier read
	// would.
	Adjust     *store.Money
	LowBalance *store.Money
	NotifyURL  *string // where the low-balance notification is posted
	Email      *string // and mailed
}

func (p *Plane) apply(a *store.Account, s AccountSpec) error {
	if s.Name != nil {
		if len(*s.Name) > 256 || strings.ContainsAny(*s.Name, "\x00\r\n") {
			return fieldErr("FriendlyName", "at most 256 characters, no line breaks")
		}
		a.Name = *s.Name
	}
	if s.Status != nil {
		switch *s.Status {
		case store.StatusActive, store.StatusSuspended, store.StatusClosed:
		default:
			return fieldErr("Status", "%q is not active, suspended or closed", *s.Status)
		}
		if a.Status == store.StatusClosed && *s.Status != store.StatusClosed {
			return fieldErr("Status", "a closed account cannot be reopened")
		}
		a.Status = *s.Status
	}
	for _, x := range []struct {
		field string
		v     *int
		dst   *int
		max   int
	}{{"Cps", s.CPS, &a.CPS, 10000}, {"SmsPerSecond", s.SMSPerSecond, &a.SMSPerSecond, 10000}, {"MaxConcurrentCalls", s.MaxConcurrent, &a.MaxConcurrent, 1_000_000}} {
		if x.v == nil {
			continue
		}
		if *x.v < 1 || *x.v > x.max {
			return fieldErr(x.field, "%d is outside 1..%d", *x.v, x.max)
		}
		*x.dst = *x.v
	}
	if s.Class != nil {
		if _, ok := p.classes[*s.Class]; !ok {
			return fieldErr("ClassOfRestriction", "%q is not a configured class ([[control.class]])", *s.Class)
		}
		a.Class = *s.Class
	}
	if s.Balance != nil && s.Adjust != nil {
		return fieldErr("BalanceAdjustment", "give Balance or BalanceAdjustment, not both")
	}
	if s.Balance != nil {
		a.Balance = *s.Balance
	}
	if s.Adjust != nil {
		if *s.Adjust > 1_000_000_000*store.Unit || *s.Adjust < -1_000_000_000*store.Unit {
			return fieldErr("BalanceAdjustment", "%s is beyond ±1000000000", s.Adjust.String())
		}
		a.Balance += *s.Adjust
	}
	if s.LowBalance != nil {
		a.LowBalance = *s.LowBalance
	}
	if s.NotifyURL != nil {
		if err := p.cfg.Webhooks.CheckURL(*s.NotifyURL); err != nil {
			return fieldErr("NotificationUrl", "%v", err)
		}
		a.NotifyURL = *s.NotifyURL
	}
	if s.Email != nil {
		if e := *s.Email; e != "" {
			if addr, err := mail.ParseAddress(e); err != nil || addr.Address != e || addr.Name != "" || len(e) > 254 {
				return fieldErr("NotificationEmail", "%q is not a bare e-mail address such as ops@example.com", e)
			}
		}
		a.Email = *s.Email
	}
	return nil
}

// CreateAccount makes an account with a fresh auth token, returned once:
// only its hash is stored.
func (p *Plane) CreateAccount(ctx context.Context, actor string, s AccountSpec) (store.Account, string, error) {
	d := p.cfg.Defaults
	low, _ := store.ParseMoney(d.LowBalance) // validated
	a := store.Account{Status: store.StatusActive, CPS: d.CPS, SMSPerSecond: d.SMSPerSecond, MaxConcurrent: d.MaxConcurrent,
		Class: d.Class, LowBalance: low}
	if err := p.apply(&a, s); err != nil {
		return a, "", err
	}
	token := store.NewToken()
	a.TokenHash = store.HashToken(token)
	a.SID = store.NewSID(store.PrefixAccount)
	var err error
	if a.TokenSealed, err = p.tokens.seal(a.SID, token); err != nil {
		return a, "", err
	}
	ctx, gen := store.WithGeneration(ctx)
	if err := p.st.CreateAccount(ctx, actor, &a); err != nil {
		return a, "", err
	}
	p.changed(ctx, *gen, setAccount(a))
	return a, token, nil
}

// UpdateAccount changes an account.
func (p *Plane) UpdateAccount(ctx context.Context, actor, sid string, s AccountSpec) (store.Account, error) {
	ctx, gen := store.WithGeneration(ctx)
	a, err := p.st.UpdateAccount(ctx, actor, sid, func(a *store.Account) error { return p.apply(a, s) })
	if err != nil {
		return a, err
	}
	p.led.setBalance(a.SID, a.Balance) // a top-up admits calls at once
	p.changed(ctx, *gen, setAccount(a))
	return a, nil
}

// RotateToken gives an account a new auth token, returned once.
func (p *Plane) RotateToken(ctx context.Context, actor, sid string) (string, error) {
	token := store.NewToken()
	ctx, gen := store.WithGeneration(ctx)
	a, err := p.st.UpdateAccount(ctx, actor, sid, func(a *store.Account) error {
		a.TokenHash = store.HashToken(token)
		var err error
		a.TokenSealed, err = p.tokens.seal(sid, token)
		return err
	})
	if err != nil {
		return "", err
	}
	p.changed(ctx, *gen, setAccount(a))
	return token, nil
}

var usernameRE = regexp.MustCompile(`^[A-Za-z0-9._~!$&'()*+,;=-]{1,64}$`)

// StrongPassword checks the password rule for SIP users: at least 12
// characters with a lower-case letter, an upper-case letter, a digit and
// a special character.
func StrongPassword(pw string) error {
	var lower, upper, digit, special bool
	for _, r := range pw {
		switch {
		case unicode.IsLower(r):
			lower = true
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsDigit(r):
			digit = true
		case unicode.IsPrint(r):
			special = true
		default:
			return fieldErr("Password", "only printable characters")
		}
	}
	if len([]rune(pw)) < 12 || len(pw) > 128 || !lower || !upper || !digit || !special {
		return fieldErr("Password", "12 to 128 characters with a lower-case letter, an upper-case letter, a digit and a special character")
	}
	return nil
}

// HA1 is the RFC 7616 (and RFC 8760) digest HA1 of a user: hex of
// H(username ":" realm ":" password), for "MD5" and "SHA-256".
func HA1(alg, username, realm, password string) string {
	in := []byte(username + ":" + realm + ":" + password)
	if alg == "SHA-256" {
		h := sha256.Sum256(in)
		return hex.EncodeToString(h[:])
	}
	h := md5.Sum(in)
	return hex.EncodeToString(h[:])
}

// CreateUser adds a SIP user to an account. The password is checked and
// only its HA1 hashes are kept.
func (p *Plane) CreateUser(ctx context.Context, actor, account, username, password, class string) (store.User, error) {
	if !usernameRE.MatchString(username) {
		return store.User{}, fieldErr("Username", "1 to 64 characters of letters, digits and -._~!$&'()*+,;=")
	}
	if err := StrongPassword(password); err != nil {
		return store.User{}, err
	}
	if _, ok := p.classes[class]; class != "" && !ok {
		return store.User{}, fieldErr("ClassOfRestriction", "%q is not a configured class ([[control.class]])", class)
	}
	realm := p.cfg.Realm
	u := store.User{AccountSID: account, Username: username, Realm: realm, Class: class,
		HA1MD5: HA1("MD5", username, realm, password), HA1SHA256: HA1("SHA-256", username, realm, password)}
	ctx, gen := store.WithGeneration(ctx)
	if err := p.st.CreateUser(ctx, actor, &u); err != nil {
		return u, err
	}
	p.changed(ctx, *gen, setUser(u))
	return u, nil
}

// UpdateUser sets a user's password (checked, hashed) or class.
func (p *Plane) UpdateUser(ctx context.Context, actor, account, sid string, password, class *string) (store.User, error) {
	if password != nil {
		if err := StrongPassword(*password); err != nil {
			return store.User{}, err
		}
	}
	if _, ok := p.classes[deref(class)]; class != nil && *class != "" && !ok {
		return store.User{}, fieldErr("ClassOfRestriction", "%q is not a configured class ([[control.class]])", *class)
	}
	ctx, gen := store.WithGeneration(ctx)
	u, err := p.st.UpdateUser(ctx, actor, account, sid, func(u *store.User) error {
		if password != nil {
			u.Realm = p.cfg.Realm
			u.HA1MD5, u.HA1SHA256 = HA1("MD5", u.Username, u.Realm, *password), HA1("SHA-256", u.Username, u.Realm, *password)
		}
		if class != nil {
			u.Class = *class
		}
		return nil
	})
	if err != nil {
		return u, err
	}
	p.changed(ctx, *gen, setUser(u))
	return u, nil
}

// DeleteUser removes a user.
func (p *Plane) DeleteUser(ctx context.Context, actor, account, sid string) error {
	ctx, gen := store.WithGeneration(ctx)
	if err := p.st.DeleteUser(ctx, actor, account, sid); err != nil {
		return err
	}
	p.changed(ctx, *gen, func(s *snapshot) {
		maps.DeleteFunc(s.users, func(_ string, u *store.User) bool { return u.SID == sid })
	})
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// NumberSpec is what a new number or a number update sets.
type NumberSpec struct {
	PhoneNumber  *string
	FriendlyName *string
	Voice        *bool
	SMS          *bool
	VoiceTarget  *string
	SMSURL       *string
	SMSStop      *bool   // the SBC handles STOP/START (default true)
	Callback     *string // the calls' status callback URL
}

var (
	trunkTargetRE = regexp.MustCompile(`^(trunk|user):[A-Za-z0-9._~!$&'()*+,;=-]{1,64}$`)
	// A SIP URI target: a user at one of the configured trunks' addresses
	// (the SBC calls no host its config does not name).
	uriTargetRE = regexp.MustCompile(`^sip:[A-Za-z0-9._~!$&'()*+,;=%-]{1,64}@([A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(:[0-9]{1,5})?$`)
)

func applyNumber(n *store.Number, s NumberSpec, hooks WebhookConfig) error {
	if s.PhoneNumber != nil {
		e, ok := E164(*s.PhoneNumber)
		if !ok || !strings.HasPrefix(*s.PhoneNumber, "+") {
			return fieldErr("PhoneNumber", "%q is not an E.164 number such as +14155550100", *s.PhoneNumber)
		}
		n.PhoneNumber = e
	}
	if s.FriendlyName != nil {
		if len(*s.FriendlyName) > 64 || strings.ContainsAny(*s.FriendlyName, "\x00\r\n") {
			return fieldErr("FriendlyName", "at most 64 characters, no line breaks")
		}
		n.FriendlyName = *s.FriendlyName
	}
	if s.Voice != nil {
		n.Voice = *s.Voice
	}
	if s.SMS != nil {
		n.SMS = *s.SMS
	}
	if s.SMSStop != nil {
		n.SMSStop = *s.SMSStop
	}
	if s.VoiceTarget != nil {
		t := *s.VoiceTarget
		if t != "" && !trunkTargetRE.MatchString(t) && !uriTargetRE.MatchString(t) {
			return fieldErr("VoiceUrl", "%q is not trunk:NAME, user:NAME or sip:USER@HOST[:PORT] (or empty: the dial plan)", t)
		}
		n.VoiceTarget = t
	}
	if s.SMSURL != nil {
		if err := hooks.CheckURL(*s.SMSURL); err != nil {
			return fieldErr("SmsUrl", "%v", err)
		}
		n.SMSURL = *s.SMSURL
	}
	if s.Callback != nil {
		if err := hooks.CheckURL(*s.Callback); err != nil {
			return fieldErr("StatusCallback", "%v", err)
		}
		n.StatusCallback = *s.Callback
	}
	return nil
}

// ownUser refuses a number's target user:NAME unless NAME is a SIP user
// of the number's own account: one account never rings another's phones.
func (p *Plane) ownUser(ctx context.Context, account, target string) error {
	name, ok := strings.CutPrefix(target, "user:")
	if !ok {
		return nil
	}
	users, err := p.st.Users(ctx, account)
	if err != nil {
		return err
	}
	for _, u := range users {
		if u.Username == name {
			return nil
		}
	}
	return fieldErr("VoiceUrl", "%q: no SIP user %q in this account", target, name)
}

// CreateNumber gives an account a number.
func (p *Plane) CreateNumber(ctx context.Context, actor, account string, s NumberSpec) (store.Number, error) {
	n := store.Number{AccountSID: account, Voice: true, SMSStop: true}
	if s.PhoneNumber == nil {
		return n, fieldErr("PhoneNumber", "required")
	}
	if err := applyNumber(&n, s, p.cfg.Webhooks); err != nil {
		return n, err
	}
	if err := p.ownUser(ctx, account, n.VoiceTarget); err != nil {
		return n, err
	}
	if n.FriendlyName == "" {
		n.FriendlyName = n.PhoneNumber
	}
	ctx, gen := store.WithGeneration(ctx)
	if err := p.st.CreateNumber(ctx, actor, &n); err != nil {
		return n, err
	}
	p.changed(ctx, *gen, setNumber(n))
	return n, nil
}

// UpdateNumber changes a number of an account.
func (p *Plane) UpdateNumber(ctx context.Context, actor, account, sid string, s NumberSpec) (store.Number, error) {
	if s.PhoneNumber != nil {
		return store.Number{}, fieldErr("PhoneNumber", "cannot be changed; release the number and add the new one")
	}
	ctx, gen := store.WithGeneration(ctx)
	n, err := p.st.UpdateNumber(ctx, actor, account, sid, func(n *store.Number) error {
		if err := applyNumber(n, s, p.cfg.Webhooks); err != nil {
			return err
		}
		return p.ownUser(ctx, account, n.VoiceTarget)
	})
	if err != nil {
		return n, err
	}
	p.changed(ctx, *gen, setNumber(n))
	return n, nil
}

// DeleteNumber releases a number.
func (p *Plane) DeleteNumber(ctx context.Context, actor, account, sid string) error {
	ctx, gen := store.WithGeneration(ctx)
	if err := p.st.DeleteNumber(ctx, actor, account, sid); err != nil {
		return err
	}
	p.changed(ctx, *gen, func(s *snapshot) {
		maps.DeleteFunc(s.numbers, func(_ string, n *store.Number) bool { return n.SID == sid })
	})
	return nil
}

// AdminTokenFile is where EnsureAdmin writes the first operator
// credential, in data_dir.
const AdminTokenFile = "admin-token"

// EnsureAdmin makes an operator credential when the store has none and
// writes "SID:TOKEN" to data_dir/admin-token (mode 0600): no default
// password, and the token never in a log. It returns the file's path, or
// "" when a credential existed.
func (p *Plane) EnsureAdmin(ctx context.Context) (string, error) {
	admins, err := p.st.Admins(ctx)
	if err != nil || len(admins) > 0 {
		return "", err
	}
	// The file first (a data_dir we cannot write fails before the store
	// holds a credential nobody has), in place only once committed.
	path := filepath.Join(p.cfg.DataDir, AdminTokenFile)
	tmp, err := os.CreateTemp(p.cfg.DataDir, AdminTokenFile+".*") // mode 0600
	if err != nil {
		return "", fmt.Errorf("operator credential: %w", err)
	}
	defer os.Remove(tmp.Name())
	sid := store.NewSID(store.PrefixAdmin)
	token := store.NewToken()
	if _, err := tmp.WriteString(sid + ":" + token + "\n"); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := errors.Join(tmp.Sync(), tmp.Close()); err != nil {
		return "", fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := p.st.SetAdmin(ctx, "system", store.Admin{SID: sid, TokenHash: store.HashToken(token)}); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("operator credential made but its file not written (make a new token with sbc admin-token): %w", err)
	}
	return path, nil
}

// SetAdmin makes an operator credential, or gives the one named sid a new
// token; the token is returned once.
func (p *Plane) SetAdmin(ctx context.Context, actor, sid string) (string, string, error) {
	if sid == "" {
		sid = store.NewSID(store.PrefixAdmin)
	} else if !store.ValidSID(store.PrefixAdmin, sid) {
		return "", "", fieldErr("sid", "%q is not an operator SID (AD and 32 hex digits)", sid)
	}
	token := store.NewToken()
	return sid, token, p.st.SetAdmin(ctx, actor, store.Admin{SID: sid, TokenHash: store.HashToken(token)})
}

// setAccount, setUser and setNumber put a changed row in a snapshot.
func setAccount(a store.Account) func(*snapshot) {
	return func(s *snapshot) { s.accounts[a.SID] = &a }
}

func setUser(u store.User) func(*snapshot) {
	return func(s *snapshot) { s.users[u.Username] = &u }
}

func setNumber(n store.Number) func(*snapshot) {
	return func(s *snapshot) { s.numbers[n.PhoneNumber] = &n }
}
