package sbc

// Status codes the B2BUA maps in one place: what a caller gets for what the
// callee said, and the reason phrases we send.

// reasons are the RFC 3261 §21 phrases. Phrases from the far leg are never
// relayed: free text can carry the other side's internals.
var reasons = map[int]string{
	180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued", 183: "Session Progress",
	200: "OK",
	400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
	404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
	408: "Request Timeout", 410: "Gone", 413: "Request Entity Too Large", 414: "Request-URI Too Long",
	415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
	423: "Interval Too Brief", 480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
	482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
	486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here", 491: "Request Pending",
	493: "Undecipherable",
	500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
	504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
	600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}

// reason returns the standard phrase for code, or a generic one for its class.
func reason(code int) string {
	if r, ok := reasons[code]; ok {
		return r
	}
	switch code / 100 {
	case 1:
		return "Session Progress"
	case 2:
		return "OK"
	case 4:
		return "Request Failure"
	case 5:
		return "Server Failure"
	case 6:
		return "Global Failure"
	}
	return "Failure"
}

// relayStatus maps a far leg's final failure to what the near leg gets.
// Most pass unchanged; redirects and auth challenges cannot be acted on by a
// caller behind a topology-hiding B2BUA, so they become plain failures.
func relayStatus(code int) int {
	switch {
	case code >= 300 && code < 400:
		return 480
	case code == 401 || code == 407:
		return 403
	case code < 300 || code > 699:
		return 502
	}
	return code
}
