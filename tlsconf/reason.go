package tlsconf

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// Reason is why a handshake failed: the reason label of
// shardgate_tls_handshake_errors_total. The set is fixed so the label never
// takes a value from a client.
type Reason int

const (
	// ReasonTimeout: the handshake did not finish within server.read_timeout.
	ReasonTimeout Reason = iota
	// ReasonClosed: the client closed or reset the connection mid-handshake.
	ReasonClosed
	// ReasonNotTLS: the first bytes were not a TLS record (plain HTTP sent to
	// a TLS port, a scanner).
	ReasonNotTLS
	// ReasonVersion: the client offered only versions below min_version.
	ReasonVersion
	// ReasonCipher: no cipher suite or key exchange group in common.
	ReasonCipher
	// ReasonALPN: the client insisted on an application protocol other than
	// http/1.1.
	ReasonALPN
	// ReasonAlert: the client aborted with an alert, typically because it
	// does not trust the certificate.
	ReasonAlert
	// ReasonOther: anything else.
	ReasonOther

	// NumReasons is the number of reasons, for tables indexed by Reason.
	NumReasons = int(ReasonOther) + 1
)

var reasonNames = [NumReasons]string{"timeout", "closed", "not_tls", "protocol_version", "cipher", "alpn", "alert", "other"}

// String returns the label value: "timeout", "closed", "not_tls",
// "protocol_version", "cipher", "alpn", "alert" or "other".
func (r Reason) String() string {
	if r < 0 || int(r) >= NumReasons {
		return "other"
	}
	return reasonNames[r]
}

// Classify returns the reason of a failed server handshake.
func Classify(err error) Reason {
	var ne net.Error
	var rh tls.RecordHeaderError
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return ReasonTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return ReasonClosed
	case errors.As(err, &rh):
		return ReasonNotTLS
	}
	// crypto/tls reports the rest as plain errors; these texts have been
	// stable since Go 1.12.
	msg := err.Error()
	switch {
	case strings.Contains(msg, "remote error"):
		return ReasonAlert
	case strings.Contains(msg, "unsupported versions"), strings.Contains(msg, "protocol version"):
		return ReasonVersion
	case strings.Contains(msg, "cipher suite"), strings.Contains(msg, "curve"), strings.Contains(msg, "key share"):
		return ReasonCipher
	case strings.Contains(msg, "application protocol"):
		return ReasonALPN
	}
	return ReasonOther
}
