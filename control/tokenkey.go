package control

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// The auth token signs the account's webhooks (X-Twilio-Signature is an
// HMAC keyed with it), so the plane must have the token itself, not only
// the hash it checks API logins against. It keeps the token sealed
// (AES-256-GCM, the account SID as associated data: a sealed token moved
// to another account does not open) with a key in a file of its own: a
// copy of the store alone gives no token away. Nodes sharing one store
// must share the key file.

// tokenKeyLen is the key's length: AES-256.
const tokenKeyLen = 32

// ErrNoSealedToken: the account's token was made before tokens were
// sealed; webhooks cannot be signed until it is rotated.
var ErrNoSealedToken = errors.New("control: the account's auth token predates signing; rotate it (POST …/AuthToken.json) to sign its webhooks")

// tokenSealer holds the key, read (or made, at first use) from its file.
type tokenSealer struct {
	path string
	mu   sync.Mutex
	aead cipher.AEAD
}

func (s *tokenSealer) load() (cipher.AEAD, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aead != nil {
		return s.aead, nil
	}
	key, err := readTokenKey(s.path)
	if err != nil {
		return nil, fmt.Errorf("control: token_key_file %s: %w", s.path, err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	if s.aead, err = cipher.NewGCM(block); err != nil {
		return nil, err
	}
	return s.aead, nil
}

// readTokenKey reads the key file, making it (mode 0600, a fresh random
// key) when there is none.
func readTokenKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		key = make([]byte, tokenKeyLen)
		rand.Read(key)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return readTokenKey(path) // made meanwhile (another process)
		}
		if err != nil {
			return nil, err
		}
		_, err = f.Write(key)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return nil, err
		}
		return key, nil
	}
	if err != nil {
		return nil, err
	}
	if len(key) != tokenKeyLen {
		return nil, fmt.Errorf("%d bytes; want %d random bytes (delete it to have a new one made, then rotate every account's token)", len(key), tokenKeyLen)
	}
	return key, nil
}

// seal returns token sealed for account sid.
func (s *tokenSealer) seal(sid, token string) (string, error) {
	aead, err := s.load()
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(token)+aead.Overhead())
	rand.Read(nonce)
	return base64.RawStdEncoding.EncodeToString(aead.Seal(nonce, nonce, []byte(token), []byte(sid))), nil
}

// open returns the token sealed for account sid.
func (s *tokenSealer) open(sid, sealed string) (string, error) {
	if sealed == "" {
		return "", ErrNoSealedToken
	}
	aead, err := s.load()
	if err != nil {
		return "", err
	}
	b, err := base64.RawStdEncoding.DecodeString(sealed)
	if err != nil || len(b) < aead.NonceSize() {
		return "", fmt.Errorf("control: account %s: sealed token malformed", sid)
	}
	token, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(sid))
	if err != nil {
		return "", fmt.Errorf("control: account %s: sealed token does not open with %s (another node's key? nodes sharing a store share the key file)", sid, s.path)
	}
	return string(token), nil
}

// checkTokenKey tells, at start, whether the node's key opens the tokens
// in the store: a node with a key of its own (token_key_file not shared
// among the nodes of one store, or lost) would sign nothing.
func (p *Plane) checkTokenKey() error {
	for _, a := range p.snap.Load().accounts {
		if a.TokenSealed == "" {
			continue
		}
		_, err := p.tokens.open(a.SID, a.TokenSealed)
		return err // one is enough: all are sealed with one key
	}
	return nil
}
