package media

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSRTPKnownAnswer encrypts the reference packet of libsrtp's test
// driver (srtp_driver.c, AES_CM_128_HMAC_SHA1_80 from a master key and
// salt, RFC 3711 key derivation) and checks the ciphertext and tag byte
// for byte, then decrypts it back.
func TestSRTPKnownAnswer(t *testing.T) {
	key := unhex(t, `e1f97a0d3e018be0d64fa32c06de4139 0ec675ad498afeebb6960b3aabe6`)
	plain := unhex(t, `800f1234decafbadcafebabe abababababababababababababababab`)
	want := unhex(t, `800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb`)
	enc, err := AES_CM_128_HMAC_SHA1_80.newContext(key, false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := enc.EncryptRTP(nil, plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("ciphertext\n%x\nwant\n%x", got, want)
	}
	dec, err := AES_CM_128_HMAC_SHA1_80.newContext(key, true)
	if err != nil {
		t.Fatal(err)
	}
	back, err := dec.DecryptRTP(nil, want, nil)
	if err != nil || !bytes.Equal(back, plain) {
		t.Fatalf("decrypt = %x, %v; want %x", back, err, plain)
	}
}
