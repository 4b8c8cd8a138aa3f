package api

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"sbc/control/store"
)

// Paging parameters every list takes.
var pageParams = []string{"PageSize", "Page", "PageToken"}

// pageReq is the page a list request asks for.
type pageReq struct {
	size, num int
	store     store.Page
}

func (q *request) page() (pageReq, error) {
	p := pageReq{size: 50}
	if v, ok := q.get("PageSize"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return p, badParam("PageSize", "%q is not a number from 1 to 1000", v)
		}
		p.size = n
	}
	if v, ok := q.get("Page"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1_000_000 {
			return p, badParam("Page", "%q is not a page number from 0", v)
		}
		p.num = n
	}
	p.store = store.Page{Size: p.size, Offset: p.num * p.size}
	if v, ok := q.get("PageToken"); ok {
		t, sid, ok := parseToken(v)
		if !ok {
			return p, badParam("PageToken", "not a token this API gave")
		}
		p.store.AfterTime, p.store.AfterSID = t, sid
	}
	return p, nil
}

// A page token is "PA", the last row's SID, "_" and its time in
// microseconds: the next page starts after it, however rows move.
func pageToken(t time.Time, sid string) string {
	return "PA" + sid + "_" + strconv.FormatInt(t.UnixMicro(), 10)
}

func parseToken(s string) (time.Time, string, bool) {
	rest, ok := strings.CutPrefix(s, "PA")
	sid, us, ok2 := strings.Cut(rest, "_")
	n, err := strconv.ParseInt(us, 10, 64)
	if !ok || !ok2 || err != nil || len(sid) != 34 || !store.ValidSID(sid[:2], sid) {
		return time.Time{}, "", false
	}
	return time.UnixMicro(n).UTC(), sid, true
}

// list is a page of key in the CPaaS list form: n items, more after them
// or not, and the token the next page starts after ("" for none).
func (q *request) list(key string, items any, n int, p pageReq, more bool, token string) map[string]any {
	path := q.r.URL.Path
	with := func(page int, token string) string {
		v := url.Values{}
		for k, vals := range q.form {
			if k != "Page" && k != "PageToken" && k != "PageSize" {
				v[k] = vals
			}
		}
		v.Set("PageSize", strconv.Itoa(p.size))
		v.Set("Page", strconv.Itoa(page))
		if token != "" {
			v.Set("PageToken", token)
		}
		return path + "?" + v.Encode()
	}
	out := map[string]any{
		key:                 items,
		"page":              p.num,
		"page_size":         p.size,
		"start":             p.num * p.size,
		"end":               p.num*p.size + max(n-1, 0),
		"uri":               q.r.URL.RequestURI(),
		"first_page_uri":    with(0, ""),
		"next_page_uri":     nil,
		"previous_page_uri": nil,
	}
	if more {
		out["next_page_uri"] = with(p.num+1, token)
	}
	if p.num > 0 {
		out["previous_page_uri"] = with(p.num-1, "")
	}
	return out
}

// keyset is the list of a page read from the store: a full page may have
// more after it, from the token of its last row.
func (q *request) keyset(key string, items any, n int, p pageReq, lastTime time.Time, lastSID string) map[string]any {
	if n < p.size {
		return q.list(key, items, n, p, false, "")
	}
	return q.list(key, items, n, p, true, pageToken(lastTime, lastSID))
}
