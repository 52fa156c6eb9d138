package segmentapi

import (
	"crypto/tls"
	"net"

	"github.com/currents-connect/currents-connect/tests/selfsigned"
)

// WithTLS serves HTTPS, HTTP/2 offered beside HTTP/1.1, under
// a certificate made at Start for 127.0.0.1 and localhost: clients trust
// CertPEM (the binary through SSL_CERT_FILE). URL then starts with https://.
func WithTLS() Option { return func(c *config) { c.tls = true } }

// CertPEM is the server's certificate in PEM, the one to trust; nil without
// WithTLS.
func (s *Server) CertPEM() []byte { return s.certPEM }

// serverTLS is the TLS configuration of a server under a new certificate
// for loopback, and the certificate in PEM.
func serverTLS() (*tls.Config, []byte, error) {
	cert, err := selfsigned.New()
	if err != nil {
		return nil, nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert.TLS}, NextProtos: []string{"h2", "http/1.1"}}, cert.CertPEM, nil
}

// trackedOf is the *trackedConn under c, which a TLS connection wraps.
func trackedOf(c net.Conn) *trackedConn {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	tc, _ := c.(*trackedConn)
	return tc
}
