package segmentapi

import (
	"crypto/tls"
	"fmt"
	"net"

	"github.com/currents-connect/currents-connect/tests/selfsigned"
)

// WithTLS serves HTTPS, HTTP/2 offered beside HTTP/1.1, under
// a certificate made at Start for 127.0.0.1 and localhost: clients trust
// CertPEM (the binary through SSL_CERT_FILE). URL then starts with https://.
func WithTLS() Option { return func(c *config) { c.tls = true } }

// WithTLSCert is WithTLS under the given certificate and key (PEM) rather
// than a new one: a process trusts SSL_CERT_FILE as Go first reads it, so
// that servers started one after another under one certificate are all
// trusted.
func WithTLSCert(certPEM, keyPEM []byte) Option {
	return func(c *config) { c.tls, c.certPEM, c.keyPEM = true, certPEM, keyPEM }
}

// CertPEM is the server's certificate in PEM, the one to trust; nil without
// WithTLS.
func (s *Server) CertPEM() []byte { return s.certPEM }

// serverTLS is the TLS configuration of a server under cfg's certificate,
// or a new one for loopback, and the certificate in PEM.
func serverTLS(cfg config) (*tls.Config, []byte, error) {
	certPEM, keyPEM := cfg.certPEM, cfg.keyPEM
	if certPEM == nil {
		cert, err := selfsigned.New()
		if err != nil {
			return nil, nil, err
		}
		certPEM, keyPEM = cert.CertPEM, cert.KeyPEM
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("segmentapi: TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2", "http/1.1"}}, certPEM, nil
}

// trackedOf is the *trackedConn under c, which a TLS connection wraps.
func trackedOf(c net.Conn) *trackedConn {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	tc, _ := c.(*trackedConn)
	return tc
}
