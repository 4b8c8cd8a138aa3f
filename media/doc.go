// Package media anchors the media of calls: it allocates UDP port pairs,
// binds sockets, relays RTP and RTCP between the two legs of a call, learns
// each peer's real address (latching), counts packets and tracks activity
// for media timeouts.
//
// A [Relay] owns the port range and every [Session]; a Session is one call;
// a [Stream] is one negotiated m= line and holds two port pairs, one facing
// each leg. The package knows nothing of SIP or SDP text: the caller hands it
// addresses as [Peer] values.
//
// Socket I/O lives in socket.go alone so that a batched transport can
// replace it without changing the Stream/Session API.
package media
