package webhook

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"maps"
	"net/url"
	"slices"
)

// Signature is Twilio's request signature (the X-Twilio-Signature header):
// base64(HMAC-SHA1(token, URL + for each param name in sorted order the name
// followed by its value)). A name with several values contributes
// name+value once per value, values sorted. rawURL is signed exactly as
// given, query string included, so receivers must see the same text.
func Signature(token, rawURL string, params url.Values) string {
	mac := hmac.New(sha1.New, []byte(token))
	io.WriteString(mac, rawURL)
	for _, name := range slices.Sorted(maps.Keys(params)) {
		vals := params[name]
		if len(vals) > 1 {
			vals = slices.Sorted(slices.Values(vals)) // a copy: the caller's slice stays as it was
		}
		for _, v := range vals {
			io.WriteString(mac, name)
			io.WriteString(mac, v)
		}
	}
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
